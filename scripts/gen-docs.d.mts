/** Types of scripts/gen-docs.mjs, for test/docs.test.ts. */
export declare const ROOT: string
export declare const REGENERATE: string
export interface Generated {
  readonly files: Map<string, string>
  readonly problems: string[]
}
/** Builds every generated file from the modules `load` returns (paths relative to the root, e.g. `src/config.ts`). */
export declare function generate (load: (file: string) => Promise<Record<string, unknown>>, root?: string): Promise<Generated>
/** The committed files that differ from the generated ones. */
export declare function staleFiles (files: Map<string, string>, root?: string): string[]
/** Variables of EnvSchema that `.env.example` does not name. */
export declare function missingFromEnvExample (envSchema: { properties: Record<string, unknown> }, envExample: string): string[]
/** The module holding the error catalogue, relative to the root. */
export declare const CATALOGUE_FILE: string
/** docs/reference/chain.md from GATEWAY_CHAIN and the package's exports; pushes a problem per inconsistency. */
export declare function chainDoc (chain: readonly unknown[], api: Record<string, unknown>, problems: string[]): string

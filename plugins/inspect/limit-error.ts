/** Why extraction refused a request phase (the plugin maps each reason to a client error). */
export type InspectLimitReason =
  /** Prototype-poisoning keys, or JSON nested deeper / holding more keys than the limits. */
  | 'poison' | 'depth' | 'keys'
  /** A JSON object with the same key twice (after unescaping). */
  | 'duplicate'
  /** More text than the inspection budget, or a coded body that decodes past it. */
  | 'size'
  /** A coded body its coding cannot decode. */
  | 'corrupt'
  /** A content coding (or multipart transfer encoding) inspection does not decode. */
  | 'encoding'
  /** A charset (or byte-order mark) inspection does not decode. */
  | 'charset'

/** Why extraction refused a request: a body it cannot read as the backend will, or too much to inspect. */
export class InspectLimitError extends Error {
  readonly reason: InspectLimitReason
  constructor (reason: InspectLimitReason, options?: { cause?: unknown }) {
    super(reason, options)
    this.reason = reason
  }
}

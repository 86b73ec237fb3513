/**
 * deploy/kubernetes (plain manifests) and deploy/helm/portcullis (the chart): every object is
 * checked against the Kubernetes OpenAPI schemas (kubernetes-models), the gateway's security and
 * shutdown properties are asserted one by one, its settings boot a real gateway, and the chart
 * passes `helm lint --strict` and renders (`helm template`) objects that pass the same checks.
 */
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'
import { EnvSchema, GATEWAY_VARIABLES, environmentWarnings } from '../src/config.js'
import { startGateway } from './helpers/gateway.js'
import { helm, kustomize } from './helpers/helm.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (p: string): string => readFileSync(join(root, p), 'utf8')
const plainDir = 'deploy/kubernetes'
const chartDir = 'deploy/helm/portcullis'

// ---------------------------------------------------------------------------------------------
// The shapes the assertions read (loosely typed: the schemas check the rest).

type Labels = Record<string, string>
interface Meta { name: string, labels?: Labels, annotations?: Record<string, string> }
interface K8sObject { apiVersion: string, kind: string, metadata: Meta, [key: string]: unknown }
interface Probe { httpGet?: { path: string, port: string | number, scheme?: string } }
interface SecurityContext {
  runAsNonRoot?: boolean
  runAsUser?: number
  runAsGroup?: number
  fsGroup?: number
  allowPrivilegeEscalation?: boolean
  readOnlyRootFilesystem?: boolean
  privileged?: boolean
  capabilities?: { drop?: string[], add?: string[] }
  seccompProfile?: { type: string }
}
interface EnvVar { name: string, value?: string, valueFrom?: { secretKeyRef?: { name: string, key: string }, configMapKeyRef?: unknown } }
interface Container {
  name: string
  image: string
  ports: Array<{ name: string, containerPort: number }>
  envFrom?: Array<{ configMapRef?: { name: string }, secretRef?: { name: string } }>
  env?: EnvVar[]
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
  securityContext?: SecurityContext
  readinessProbe?: Probe
  livenessProbe?: Probe
  startupProbe?: Probe
  lifecycle?: { preStop?: { exec?: { command: string[] } } }
  volumeMounts?: Array<{ name: string, mountPath: string, subPath?: string, readOnly?: boolean }>
}
interface Volume { name: string, emptyDir?: object, configMap?: { name: string }, secret?: { secretName: string, items?: Array<{ key: string, path: string }> } }
interface PodSpec {
  automountServiceAccountToken?: boolean
  terminationGracePeriodSeconds?: number
  securityContext?: SecurityContext
  topologySpreadConstraints?: Array<{ topologyKey: string, labelSelector: { matchLabels: Labels } }>
  affinity?: { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution?: Array<{ podAffinityTerm: { topologyKey: string, labelSelector: { matchLabels: Labels } } }> } }
  containers: Container[]
  volumes?: Volume[]
}
interface DeploymentObject extends K8sObject { spec: { replicas?: number, selector: { matchLabels: Labels }, template: { metadata: Meta, spec: PodSpec } } }
interface ServiceObject extends K8sObject { spec: { selector: Labels, clusterIP?: string, ports: Array<{ name: string, port: number, targetPort: string | number }> } }
interface Peer { namespaceSelector?: { matchLabels?: Labels }, podSelector?: { matchLabels?: Labels }, ipBlock?: unknown }
interface PolicyPort { port?: string | number, protocol?: string }
interface NetworkPolicyObject extends K8sObject {
  spec: {
    podSelector: { matchLabels: Labels }
    policyTypes: string[]
    ingress?: Array<{ from?: Peer[], ports?: PolicyPort[] }>
    egress?: Array<{ to?: Peer[], ports?: PolicyPort[] }>
  }
}

// ---------------------------------------------------------------------------------------------
// Schema validation.

interface Model { validate: () => void }
type ModelClass = new (data: never) => Model
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor
}

/** The schema errors of one object ('' when valid). */
function schemaErrors (o: K8sObject): string {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`]
  if (Model === undefined) return `no schema for ${o.apiVersion} ${o.kind}`
  try {
    new Model(o as never).validate()
    return ''
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
}

function documents (text: string, source: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((d) => {
    if (d.errors.length > 0) throw new Error(`${source}: ${d.errors.map((e) => e.message).join('; ')}`)
    const o = d.toJS() as K8sObject | null
    return o === null ? [] : [o]
  })
}

// ---------------------------------------------------------------------------------------------
// What the gateway and its image are.

/** Route upstream variables: the names the route modules read with upstreamFromEnv(). */
function upstreamVariables (routes: Record<string, string>): string[] {
  return Object.values(routes).flatMap((src) => [...src.matchAll(/upstreamFromEnv\(\s*'([A-Z0-9_]+)'/g)].map((m) => m[1] as string))
}

/** The uid the image runs as: the final stage's USER (`node` is uid 1000 in the official node images). */
function imageUid (): number {
  const users = [...read('Dockerfile').matchAll(/^USER (\S+)$/gm)].map((m) => m[1] as string)
  const user = users.at(-1) ?? 'root'
  const known: Record<string, number> = { root: 0, node: 1000 }
  const uid = /^\d+$/.test(user) ? Number(user) : known[user]
  if (uid === undefined) throw new Error(`unknown uid of Dockerfile USER ${user}`)
  return uid
}

/** The writable paths the gateway needs: none but /tmp (compose runs it read_only: true without tmpfs). */
const WRITABLE = ['/tmp']
/** The image's WORKDIR: route modules must sit under it to import 'portcullis'. */
const APP_DIR = /^WORKDIR (\S+)$/m.exec(read('Dockerfile').split(/^FROM /m).at(-1) ?? '')?.[1] ?? ''

const schemaDefault = (name: string): number => (EnvSchema.properties as Record<string, { default?: unknown }>)[name]?.default as number

function matches (selector: Labels, labels: Labels | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v)
}

function byKind<T extends K8sObject> (objects: K8sObject[], kind: string): T[] {
  return objects.filter((o) => o.kind === kind) as T[]
}

// ---------------------------------------------------------------------------------------------
// The checks shared by the plain manifests and the rendered chart.

interface Rendered {
  objects: K8sObject[]
  /** The gateway's environment from its ConfigMap (envFrom). */
  env: Record<string, string>
  routes: Record<string, string>
  deployment: DeploymentObject
}

function gatewayParts (objects: K8sObject[]): Rendered {
  const deployment = byKind<DeploymentObject>(objects, 'Deployment').find((d) => d.spec.template.spec.containers.some((c) => c.ports.some((p) => p.name === 'metrics')))
  if (deployment === undefined) throw new Error('no gateway Deployment')
  const container = deployment.spec.template.spec.containers[0] as Container
  const configMaps = byKind<K8sObject & { data?: Record<string, string> }>(objects, 'ConfigMap')
  const envName = container.envFrom?.find((e) => e.configMapRef !== undefined)?.configMapRef?.name
  const env = configMaps.find((c) => c.metadata.name === envName)?.data ?? {}
  const routesVolume = deployment.spec.template.spec.volumes?.find((v) => v.name === 'routes')?.configMap?.name
  const routes = configMaps.find((c) => c.metadata.name === routesVolume)?.data ?? {}
  return { objects, env, routes, deployment }
}

function checkGateway (t: Test, { objects, env, routes, deployment }: Rendered): void {
  const pod = deployment.spec.template.spec
  const podLabels = deployment.spec.template.metadata.labels ?? {}
  t.equal(pod.containers.length, 1, 'one container')
  const c = pod.containers[0] as Container
  const uid = imageUid()

  t.test('runs as the image user, non-root, read-only, no capabilities, no escalation, RuntimeDefault seccomp', async (t) => {
    t.equal(pod.securityContext?.runAsNonRoot, true)
    t.equal(pod.securityContext?.runAsUser, uid, `uid ${uid}, the Dockerfile USER`)
    t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault')
    const s = c.securityContext ?? {}
    t.equal(s.runAsNonRoot, true)
    t.equal(s.runAsUser ?? pod.securityContext?.runAsUser, uid)
    t.not(s.runAsUser ?? pod.securityContext?.runAsUser, 0)
    t.equal(s.readOnlyRootFilesystem, true)
    t.equal(s.allowPrivilegeEscalation, false)
    t.not(s.privileged, true)
    t.strictSame(s.capabilities?.drop, ['ALL'])
    t.equal(s.capabilities?.add, undefined, 'no capability added back')
    t.equal(s.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type, 'RuntimeDefault')
    t.equal(pod.automountServiceAccountToken, false, 'no API token in the pod')
  })

  t.test('the only writable paths are emptyDir volumes', async (t) => {
    for (const path of WRITABLE) {
      const mount = c.volumeMounts?.find((m) => m.mountPath === path)
      t.ok(mount !== undefined, `${path} is mounted`)
      t.ok(pod.volumes?.find((v) => v.name === mount?.name)?.emptyDir !== undefined, `${path} is an emptyDir`)
    }
    for (const m of c.volumeMounts ?? []) {
      const v = pod.volumes?.find((v) => v.name === m.name)
      t.ok(v !== undefined, `volume ${m.name} exists`)
      if (v?.emptyDir === undefined) t.equal(m.readOnly, true, `${m.mountPath} is read-only`)
    }
  })

  t.test('requests and limits', async (t) => {
    for (const kind of ['requests', 'limits'] as const) {
      t.ok(c.resources?.[kind]?.cpu !== undefined, `cpu ${kind}`)
      t.ok(c.resources?.[kind]?.memory !== undefined, `memory ${kind}`)
    }
  })

  const portOf = (name: string | number): number | undefined => typeof name === 'number' ? name : c.ports.find((p) => p.name === name)?.containerPort

  t.test('probes: /readyz for readiness, /healthz for liveness, on the gateway port', async (t) => {
    t.equal(c.readinessProbe?.httpGet?.path, '/readyz')
    t.equal(c.livenessProbe?.httpGet?.path, '/healthz')
    t.equal(c.startupProbe?.httpGet?.path, '/healthz')
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
      t.equal(portOf(probe?.httpGet?.port ?? ''), Number(env.PORT), 'the PORT the gateway listens on')
      t.equal(probe?.httpGet?.scheme ?? 'HTTP', env.TLS_CERT_FILE === undefined ? 'HTTP' : 'HTTPS')
    }
    t.equal(env.HOST, '0.0.0.0', 'kubelet reaches the pod address')
    const observability = read('plugins/observability/index.ts')
    t.match(observability, "fastify.get('/healthz'")
    t.match(observability, "fastify.get('/readyz'")
  })

  t.test('the grace period covers the preStop sleep, DRAIN_DELAY_MS and DRAIN_TIMEOUT_MS', async (t) => {
    const command = c.lifecycle?.preStop?.exec?.command ?? []
    t.equal(command[0], 'sleep')
    const preStop = Number(command[1])
    t.ok(preStop >= 1, 'a preStop sleep lets endpoint removal reach the balancers before SIGTERM')
    const delay = Number(env.DRAIN_DELAY_MS ?? schemaDefault('DRAIN_DELAY_MS'))
    const timeout = Number(env.DRAIN_TIMEOUT_MS ?? schemaDefault('DRAIN_TIMEOUT_MS'))
    t.ok(Number.isFinite(delay) && Number.isFinite(timeout))
    const grace = pod.terminationGracePeriodSeconds ?? 30
    t.ok(grace >= preStop + Math.ceil((delay + timeout) / 1000) + 1, `grace ${grace}s >= ${preStop}s + ${delay}ms + ${timeout}ms + 1s`)
  })

  t.test('every variable is one the gateway or a route module reads; values from Secrets only without a file variant', async (t) => {
    const known = new Set([...GATEWAY_VARIABLES, ...upstreamVariables(routes)])
    for (const name of Object.keys(env)) t.ok(known.has(name), `${name} (ConfigMap) is read by the gateway`)
    for (const e of c.env ?? []) {
      t.ok(known.has(e.name), `${e.name} (env) is read by the gateway`)
      const ref = e.valueFrom?.secretKeyRef
      if (ref !== undefined) t.notOk(GATEWAY_VARIABLES.includes(`${e.name}_FILE`), `${e.name} has no _FILE variant, so it comes as a variable`)
    }
    t.notOk('API_KEYS' in env, 'API keys are not in a ConfigMap')
    t.notOk('JWT_SECRET' in env, 'the JWT secret is not in a ConfigMap')
    t.equal(c.envFrom?.some((e) => e.secretRef !== undefined), false, 'no whole Secret as variables')
  })

  t.test('secret files: each *_FILE variable points into a mounted Secret holding that key', async (t) => {
    const fileVars = Object.keys(env).filter((n) => n.endsWith('_FILE') && GATEWAY_VARIABLES.includes(n))
    t.ok(fileVars.includes('API_KEYS_FILE'), 'API keys come from a file')
    for (const name of fileVars) {
      const path = env[name] as string
      const mount = c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`))
      t.ok(mount !== undefined, `${name} ${path} is under a mount`)
      const volume = pod.volumes?.find((v) => v.name === mount?.name)
      t.ok(volume?.secret !== undefined, `${name} comes from a Secret volume`)
      const file = path.slice((mount?.mountPath.length ?? 0) + 1)
      const items = volume?.secret?.items
      if (items !== undefined) t.ok(items.some((i) => i.path === file), `the Secret volume provides ${file}`)
    }
  })

  t.test('routes: each module of the ConfigMap is mounted as a regular file under ROUTES_DIR inside the app folder', async (t) => {
    const dir = env.ROUTES_DIR as string
    t.ok(dir.startsWith(`${APP_DIR}/`), `${dir} is under ${APP_DIR}, where 'portcullis' resolves`)
    const names = Object.keys(routes)
    t.ok(names.length > 0, 'at least one route module')
    for (const name of names) {
      t.match(name, /^[^._][^/]*\.(?:mjs|js|cjs)$/, `${name} is a module the loader reads`)
      const mount = c.volumeMounts?.find((m) => m.mountPath === posix.join(dir, name))
      t.equal(mount?.subPath, name, `${name} is mounted by subPath (a file, not a symbolic link)`)
    }
    const routeMounts = (c.volumeMounts ?? []).filter((m) => m.name === 'routes')
    t.equal(routeMounts.length, names.length, 'no mount of a missing module')
  })

  t.test('metrics: the admin listener is annotated for scraping and served by the metrics Service', async (t) => {
    const annotations = deployment.spec.template.metadata.annotations ?? {}
    t.equal(annotations['prometheus.io/scrape'], 'true')
    t.equal(annotations['prometheus.io/port'], env.ADMIN_PORT)
    t.equal(annotations['prometheus.io/path'], '/metrics')
    t.equal(portOf('metrics'), Number(env.ADMIN_PORT), 'the metrics port is ADMIN_PORT')
    t.equal(env.ADMIN_HOST, '0.0.0.0', 'reachable from Prometheus (the NetworkPolicy limits who)')
    t.not(env.ADMIN_PORT, env.PORT)
    const services = byKind<ServiceObject>(objects, 'Service').filter((s) => matches(s.spec.selector, podLabels))
    const metrics = services.find((s) => s.spec.ports.some((p) => p.targetPort === 'metrics'))
    t.ok(metrics !== undefined, 'a Service exposes the metrics port')
    const publicService = services.find((s) => s.spec.ports.some((p) => p.targetPort === 'http'))
    t.ok(publicService !== undefined, 'a Service exposes the gateway port')
    t.notOk(publicService?.spec.ports.some((p) => p.targetPort === 'metrics'), 'the public Service does not carry metrics')
    for (const sm of byKind<K8sObject & { spec: { selector: { matchLabels: Labels }, endpoints: Array<{ port: string, path: string }> } }>(objects, 'ServiceMonitor')) {
      t.ok(matches(sm.spec.selector.matchLabels, metrics?.metadata.labels), 'the ServiceMonitor selects the metrics Service')
      t.strictSame(sm.spec.endpoints.map((e) => [e.port, e.path]), [['metrics', '/metrics']])
    }
  })

  t.test('spread across nodes', async (t) => {
    const spread = pod.topologySpreadConstraints?.find((s) => s.topologyKey === 'kubernetes.io/hostname')
    t.ok(spread !== undefined && matches(spread.labelSelector.matchLabels, podLabels), 'topology spread over hostnames')
    const anti = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]?.podAffinityTerm
    t.ok(anti !== undefined && anti.topologyKey === 'kubernetes.io/hostname' && matches(anti.labelSelector.matchLabels, podLabels), 'anti-affinity over hostnames')
  })

  t.test('HPA and PDB target the gateway', async (t) => {
    const hpa = byKind<K8sObject & { spec: { scaleTargetRef: { kind: string, name: string }, minReplicas: number, maxReplicas: number } }>(objects, 'HorizontalPodAutoscaler')[0]
    t.equal(hpa?.apiVersion, 'autoscaling/v2')
    t.strictSame(hpa?.spec.scaleTargetRef && [hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', deployment.metadata.name])
    t.ok((hpa?.spec.minReplicas ?? 0) >= 2, 'at least two replicas')
    t.equal(deployment.spec.replicas, undefined, 'the HPA owns the replica count')
    const pdb = byKind<K8sObject & { spec: { selector: { matchLabels: Labels }, maxUnavailable?: number } }>(objects, 'PodDisruptionBudget')[0]
    t.ok(pdb !== undefined && matches(pdb.spec.selector.matchLabels, podLabels), 'the PDB selects the gateway pods')
    t.equal(pdb?.spec.maxUnavailable, 1)
  })

  t.test('NetworkPolicy: ingress from the ingress and monitoring namespaces only; egress to DNS, Redis and upstreams', async (t) => {
    const np = byKind<NetworkPolicyObject>(objects, 'NetworkPolicy').find((p) => matches(p.spec.podSelector.matchLabels, podLabels))
    t.ok(np !== undefined, 'a policy selects the gateway pods')
    if (np === undefined) return
    t.strictSame([...np.spec.policyTypes].sort(), ['Egress', 'Ingress'])
    const ingress = np.spec.ingress ?? []
    t.equal(ingress.length, 2)
    for (const rule of ingress) {
      t.ok((rule.from ?? []).length > 0, 'no ingress rule open to every source')
      for (const peer of rule.from ?? []) t.ok(Object.keys(peer.namespaceSelector?.matchLabels ?? {}).length > 0, 'a namespace chosen by labels')
      t.equal(rule.ports?.length, 1)
    }
    t.strictSame(ingress.map((r) => r.ports?.[0]?.port), ['http', 'metrics'], 'clients to the gateway port, Prometheus to the metrics port')
    const egress = np.spec.egress ?? []
    for (const rule of egress) {
      t.ok((rule.to ?? []).length > 0, 'no egress rule open to every destination')
      t.ok((rule.ports ?? []).length > 0, 'every egress rule names its ports')
    }
    const ports = egress.map((r) => (r.ports ?? []).map((p) => p.port).sort().join(','))
    t.strictSame(ports, ['53,53', '6379', '443,80,8080'], 'DNS, Redis, upstreams')
    t.equal(egress[0]?.to?.[0]?.podSelector?.matchLabels?.['k8s-app'], 'kube-dns')
  })
}

// ---------------------------------------------------------------------------------------------
// Plain manifests.

const plainFiles = readdirSync(join(root, plainDir)).filter((f) => f.endsWith('.yaml')).sort()
const plainObjects: Record<string, K8sObject[]> = Object.fromEntries(
  plainFiles.filter((f) => f !== 'kustomization.yaml').map((f) => [f, documents(read(`${plainDir}/${f}`), f)])
)

t.test('every plain manifest is valid against the Kubernetes schemas', async (t) => {
  const all = Object.entries(plainObjects).flatMap(([f, os]) => os.map((o) => [f, o] as const))
  t.ok(all.length >= 12)
  for (const [file, o] of all) t.equal(schemaErrors(o), '', `${file}: ${o.kind} ${o.metadata.name}`)
  const broken = structuredClone(plainObjects['deployment.yaml']?.[0]) as DeploymentObject
  const container = broken.spec.template.spec.containers[0] as unknown as Record<string, unknown>
  container.ports = [{ name: 'http', containerPort: 'eighty' }]
  t.match(schemaErrors(broken), /containerPort/, 'the validator rejects a broken object')
})

t.test('kustomization.yaml lists every manifest (the ServiceMonitor is opt-in)', async (t) => {
  const k = parse(read(`${plainDir}/kustomization.yaml`)) as { resources: string[], namespace: string }
  t.strictSame([...k.resources].sort(), Object.keys(plainObjects).filter((f) => f !== 'servicemonitor.yaml').sort())
  t.match(read(`${plainDir}/kustomization.yaml`), /# - servicemonitor\.yaml/)
  const ns = plainObjects['namespace.yaml']?.[0]
  t.equal(ns?.metadata.name, k.namespace)
  t.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', 'Pod Security "restricted" is enforced')
  for (const os of Object.values(plainObjects)) for (const o of os) t.equal((o.metadata as { namespace?: string }).namespace, undefined, `${o.kind} ${o.metadata.name} takes the kustomization's namespace`)
})

const plain = gatewayParts(Object.values(plainObjects).flat())

t.test('kubectl kustomize builds them into one namespace, with the image set by the kustomization', async (t) => {
  const built = documents(kustomize(join(root, plainDir)), 'kubectl kustomize')
  t.equal(built.length, Object.values(plainObjects).flat().length - 1, 'every object but the opt-in ServiceMonitor')
  for (const o of built) {
    t.equal(schemaErrors(o), '', `${o.kind} ${o.metadata.name}`)
    if (o.kind !== 'Namespace') t.equal((o.metadata as { namespace?: string }).namespace, 'portcullis', `${o.kind} ${o.metadata.name} in the namespace`)
  }
  const images = (parse(read(`${plainDir}/kustomization.yaml`)) as { images: Array<{ name: string, newName: string, newTag: string }> }).images[0]
  const parts = gatewayParts(built)
  t.equal(parts.deployment.spec.template.spec.containers[0]?.image, `${images?.newName ?? ''}:${images?.newTag ?? ''}`)
  t.strictSame(parts.env, plain.env)
})
t.test('plain manifests: the gateway Deployment', async (t) => { checkGateway(t, plain) })

t.test('plain manifests: Redis is hardened too and accepts the gateway only', async (t) => {
  const redis = byKind<DeploymentObject>(plainObjects['redis.yaml'] ?? [], 'Deployment')[0]
  const pod = redis?.spec.template.spec
  const c = pod?.containers[0]
  t.equal(pod?.securityContext?.runAsNonRoot, true)
  t.not(pod?.securityContext?.runAsUser, 0)
  t.equal(c?.securityContext?.readOnlyRootFilesystem, true)
  t.equal(c?.securityContext?.allowPrivilegeEscalation, false)
  t.strictSame(c?.securityContext?.capabilities?.drop, ['ALL'])
  t.ok(c?.resources?.limits?.memory !== undefined)
  t.equal(plain.env.REDIS_URL, `redis://${(plainObjects['redis.yaml']?.find((o) => o.kind === 'Service'))?.metadata.name ?? ''}:6379`, 'REDIS_URL names the Redis Service')
  const np = byKind<NetworkPolicyObject>(plainObjects['networkpolicy.yaml'] ?? [], 'NetworkPolicy').find((p) => matches(p.spec.podSelector.matchLabels, redis?.spec.template.metadata.labels))
  t.ok(np !== undefined && matches(np.spec.ingress?.[0]?.from?.[0]?.podSelector?.matchLabels ?? { none: 'x' }, plain.deployment.spec.template.metadata.labels), 'only gateway pods reach Redis')
  t.strictSame(np?.spec.egress, [], 'Redis opens no connection')
  const gatewayPolicy = byKind<NetworkPolicyObject>(plainObjects['networkpolicy.yaml'] ?? [], 'NetworkPolicy').find((p) => matches(p.spec.podSelector.matchLabels, plain.deployment.spec.template.metadata.labels))
  t.ok(matches(gatewayPolicy?.spec.egress?.[1]?.to?.[0]?.podSelector?.matchLabels ?? { none: 'x' }, redis?.spec.template.metadata.labels), 'the gateway may reach Redis')
})

t.test('plain manifests: the Secret the Deployment reads is documented with its keys', async (t) => {
  const pod = plain.deployment.spec.template.spec
  const c = pod.containers[0] as Container
  const keys = new Set<string>()
  const names = new Set<string>()
  for (const v of pod.volumes ?? []) if (v.secret !== undefined) { names.add(v.secret.secretName); for (const i of v.secret.items ?? []) keys.add(i.key) }
  for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef !== undefined) { names.add(e.valueFrom.secretKeyRef.name); keys.add(e.valueFrom.secretKeyRef.key) }
  t.strictSame([...names], ['portcullis-secrets'])
  const guide = read('docs/guides/deployment.md')
  const command = /kubectl -n portcullis create secret generic portcullis-secrets[^`]*/.exec(guide)?.[0] ?? ''
  t.ok(command !== '', 'the guide shows how to create it')
  for (const key of keys) t.match(command, new RegExp(`--from-(?:file|literal)=${key}=`), `the guide's command sets ${key}`)
})

t.test('plain manifests: their settings and route modules start a production gateway that is ready', async (t) => {
  // Route modules import 'portcullis': they must sit inside the package, as under /app in the image.
  const dir = mkdtempSync(join(root, '.k8s-routes-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, source] of Object.entries(plain.routes)) writeFileSync(join(dir, name), source)
  const keys = join(dir, '.api-keys')
  writeFileSync(keys, 'app:Zq3vN8wX1pL6tR4yB7mK2sD9fH5jC0gA\n')
  const env: Record<string, string> = {
    ...plain.env,
    // Only what cannot be the same outside a cluster: the listen ports, Redis and the mounts.
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    REDIS_URL: 'redis://127.0.0.1:6379',
    ROUTES_DIR: dir,
    API_KEYS_FILE: keys,
    LOG_LEVEL: 'warn'
  }
  const gw = await startGateway(t, { env, listen: false, logLevel: 'warn' })
  t.equal(gw.config.production, true)
  t.equal(gw.config.drainTimeoutMs, Number(plain.env.DRAIN_TIMEOUT_MS))
  t.strictSame(gw.app.portcullisProxy.routes.map((r) => r.prefix), ['/echo'])
  for (const path of ['/healthz', '/readyz']) {
    const res = await gw.app.inject({ method: 'GET', url: path })
    t.equal(res.statusCode, 200, `${path} answers 200`)
  }
  t.strictSame(environmentWarnings(env), [], 'no variable the gateway would warn about')
})

// ---------------------------------------------------------------------------------------------
// Helm chart.

const chart = parse(read(`${chartDir}/Chart.yaml`)) as { apiVersion: string, name: string, version: string, appVersion: string }
const values = parse(read(`${chartDir}/values.yaml`)) as Record<string, unknown>
const templateFiles = readdirSync(join(root, chartDir, 'templates')).sort()

t.test('Chart.yaml and values.yaml parse; the chart follows the package version', async (t) => {
  t.equal(chart.apiVersion, 'v2')
  t.equal(chart.name, 'portcullis')
  t.equal(chart.appVersion, (JSON.parse(read('package.json')) as { version: string }).version)
  t.equal(plain.deployment.spec.template.spec.containers[0]?.image, `portcullis:${chart.appVersion}`, 'the plain manifests run the same version')
  t.ok(typeof values.image === 'object')
})

t.test('every .Values reference in the templates exists in values.yaml', async (t) => {
  let refs = 0
  for (const file of templateFiles) {
    const text = read(`${chartDir}/templates/${file}`)
    for (const m of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
      refs++
      let node: unknown = values
      for (const key of (m[1] as string).slice(1).split('.')) {
        t.ok(node !== null && typeof node === 'object' && key in node, `${file}: .Values${m[1] as string}`)
        node = (node as Record<string, unknown>)?.[key]
      }
    }
  }
  t.ok(refs > 40)
})

t.test('the chart defaults match the plain manifests', async (t) => {
  const pod = plain.deployment.spec.template.spec
  const c = pod.containers[0] as Container
  t.strictSame(values.resources, c.resources)
  t.strictSame(values.securityContext, c.securityContext)
  t.strictSame(values.podSecurityContext, pod.securityContext)
  t.strictSame(values.routes, plain.routes)
  const env = values.env as Record<string, string>
  for (const [k, v] of Object.entries(env)) t.equal(plain.env[k], v, `env ${k}`)
})

function render (args: string[]): K8sObject[] {
  return documents(helm(['template', 'gw', join(root, chartDir), '--namespace', 'edge', ...args]), 'helm template')
}

t.test('helm lint --strict passes', async (t) => {
  const out = helm(['lint', '--strict', join(root, chartDir), '--set', 'secrets.apiKeys=app:x'])
  t.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/)
})

t.test('helm template (defaults): valid objects that pass the gateway checks', async (t) => {
  const objects = render([])
  t.strictSame(objects.map((o) => o.kind).sort(), ['ConfigMap', 'ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'PodDisruptionBudget', 'Secret', 'Service', 'Service'])
  for (const o of objects) t.equal(schemaErrors(o), '', `${o.kind} ${o.metadata.name}`)
  const parts = gatewayParts(objects)
  const annotations = parts.deployment.spec.template.metadata.annotations ?? {}
  for (const a of ['checksum/env', 'checksum/routes', 'checksum/secrets']) t.match(annotations[a], /^[0-9a-f]{64}$/, `${a}: a change rolls the pods (all are read at startup)`)
  checkGateway(t, parts)
})

t.test('helm template (every option on): TLS, Redis from a Secret, ServiceMonitor, existing Secret, longer drain', async (t) => {
  const objects = render([
    '--set', 'tls.secretName=gw-tls', '--set', 'redis.existingSecret=redis-auth',
    '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=prom',
    '--set', 'secrets.existingSecret=gw-creds', '--set', 'drain.timeoutMs=45500', '--set', 'drain.delayMs=3000',
    '--set-string', 'env.PUBLIC_HOSTS=api.example.com',
    '--set', 'networkPolicy.extraEgress[0].to[0].ipBlock.cidr=203.0.113.0/24', '--set', 'networkPolicy.extraEgress[0].ports[0].port=443'
  ])
  for (const o of objects) t.equal(schemaErrors(o), '', `${o.kind} ${o.metadata.name}`)
  t.notOk(objects.some((o) => o.kind === 'Secret'), 'an existing Secret is used, none created')
  t.equal(gatewayParts(objects).deployment.spec.template.metadata.annotations?.['checksum/secrets'], undefined)
  const parts = gatewayParts(objects)
  const pod = parts.deployment.spec.template.spec
  t.equal(pod.terminationGracePeriodSeconds, 5 + 49 + 5, 'preStop 5 s + 48.5 s drain rounded up + 5 s')
  t.equal(parts.env.TLS_CERT_FILE, '/etc/portcullis/tls/tls.crt')
  t.equal(pod.volumes?.find((v) => v.name === 'tls')?.secret?.secretName, 'gw-tls')
  const c = pod.containers[0] as Container
  t.strictSame(c.env?.find((e) => e.name === 'REDIS_URL')?.valueFrom?.secretKeyRef, { name: 'redis-auth', key: 'redis-url' })
  t.notOk('REDIS_URL' in parts.env)
  t.equal(pod.volumes?.find((v) => v.name === 'secrets')?.secret?.secretName, 'gw-creds')
  t.equal(byKind<K8sObject>(objects, 'ServiceMonitor')[0]?.metadata.labels?.release, 'prom')
  const np = byKind<NetworkPolicyObject>(objects, 'NetworkPolicy')[0]
  t.strictSame(np?.spec.egress?.at(-1), { to: [{ ipBlock: { cidr: '203.0.113.0/24' } }], ports: [{ port: 443 }] })
  // The extra rule aside, the policy is the default one.
  if (np !== undefined) np.spec.egress = np.spec.egress?.slice(0, -1)
  checkGateway(t, parts)
})

t.test('helm template (options off): fixed replicas, no HPA, no NetworkPolicy; Redis URL as a value', async (t) => {
  const objects = render(['--set', 'autoscaling.enabled=false', '--set', 'replicaCount=3', '--set', 'networkPolicy.enabled=false', '--set', 'podDisruptionBudget.enabled=false', '--set', 'redis.url=redis://redis.cache:6379'])
  t.strictSame(objects.map((o) => o.kind).sort(), ['ConfigMap', 'ConfigMap', 'Deployment', 'Secret', 'Service', 'Service'])
  const parts = gatewayParts(objects)
  t.equal(parts.deployment.spec.replicas, 3)
  t.equal(parts.env.REDIS_URL, 'redis://redis.cache:6379')
})

t.test('helm template refuses a variable the chart sets from other values', async (t) => {
  t.throws(() => render(['--set', 'env.JWT_SECRET=x']), /env\.JWT_SECRET: set by the chart from other values; use secrets\.jwtSecret/)
  t.throws(() => render(['--set', 'env.PORT=9000']), /env\.PORT: set by the chart/)
})

t.test('the guide explains the Kubernetes deployment', async (t) => {
  const guide = read('docs/guides/deployment.md')
  for (const s of ['kubectl apply -k deploy/kubernetes', 'helm install', 'ROUTES_DIR', 'API_KEYS_FILE', 'REDIS_URL', 'terminationGracePeriodSeconds', 'NetworkPolicy']) t.match(guide, s)
  t.ok(existsSync(join(root, chartDir, 'templates', 'NOTES.txt')))
})

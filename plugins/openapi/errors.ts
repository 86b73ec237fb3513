/**
 * Contract (OpenAPI) error taxonomy. Bodies name the failing field's JSON pointer and rule,
 * never its value.
 */
import createError from '@fastify/error'

const ContractViolationBase = createError('GW_CONTRACT_VIOLATION', 'Request does not match the API contract', 400)

/** One failing field: `/query/limit: maximum`. */
export type ContractProblem = string

/** A parameter or body breaks the operation's schema (block mode). The body lists `violations`. */
export class ContractViolationError extends ContractViolationBase {
  readonly violations: readonly ContractProblem[]
  constructor (violations: readonly ContractProblem[]) {
    super()
    this.violations = violations
  }
}

/** The path matches no operation of the document. */
export const ContractUnknownOperationError = createError('GW_CONTRACT_UNKNOWN_OPERATION', 'No such operation in the API contract', 404)
/** The path exists but the method is not declared for it (the answer carries `Allow`). */
export const ContractMethodNotAllowedError = createError('GW_CONTRACT_METHOD_NOT_ALLOWED', 'Method not allowed by the API contract', 405)
/** The body's media type is not declared for the operation. */
export const ContractUnsupportedMediaTypeError = createError('GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'Unsupported media type', 415)
/** The operation's security requirements are not met by the authenticated caller (or there is none). */
export const ContractUnauthorizedError = createError('GW_CONTRACT_UNAUTHORIZED', 'Authentication required by the API contract', 401)
/** The caller is authenticated, but not with a scheme or scopes the operation requires. */
export const ContractForbiddenError = createError('GW_CONTRACT_FORBIDDEN', 'Insufficient credentials for this operation', 403)
/** The upstream's response breaks the contract (`responses: 'block'`). */
export const ContractResponseError = createError('GW_CONTRACT_RESPONSE', 'Bad gateway', 502)

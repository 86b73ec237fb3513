/** The canonical-path rule shared by the request guard and the proxy handler. */

/**
 * Non-canonical path spellings. Percent-encoded unreserved characters (RFC 3986 6.2.2.2) are
 * refused rather than decoded: a canonical client never sends them.
 */
export const BAD_PATH = new RegExp([
  '(?:^|/)\\.{1,2}(?:/|;|$)', // dot segments, also Tomcat-style `..;`
  '//', // empty segments
  '\\\\', // backslash
  '%(?:2[eEfF]|5[cC]|00|[01][0-9a-fA-F]|7[fF])', // encoded . / \ NUL and control bytes
  '%25(?:2[eEfF]|5[cC]|00)', // double-encoded . / \ NUL
  '%(?:[46][1-9a-fA-F]|[57][0-9aA]|3[0-9]|2[dD]|5[fF]|7[eE])', // encoded unreserved characters
  '%[cC][01]', // overlong UTF-8 lead bytes (%c0%ae = `.`)
  '%[eE][fF]%[bB][cC]%(?:8[eEfF]|[bB][cC])', // fullwidth . / \
  '%[eE]2%88%95', // division slash
  '[\\x00-\\x20\\x7f#]', // raw controls, spaces and `#` (a fragment is never sent, RFC 9112 3.2)
  // Raw non-ASCII (RFC 3986 2: a URI is ASCII). Node's HTTP/1 parser refuses it; HTTP/2 passes it
  // on (one character per byte), and the upstream gets it percent-encoded as UTF-8: `ª` would
  // arrive as `%C2%AA`, the encoded look-alike the path readings refuse.
  '[\\x80-\\uffff]'
].join('|'))

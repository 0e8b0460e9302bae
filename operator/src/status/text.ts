// Status text the apiserver accepts: condition, event and status messages of bounded length and valid Unicode.

const MAX_MESSAGE = 1024;

/**
 * At most MAX_MESSAGE UTF-16 units, cut on a code point boundary (a split surrogate pair is invalid Unicode, which
 * the apiserver refuses: the whole status write would fail); lone surrogates in the input become U+FFFD.
 */
export function truncateMessage(s: string): string {
  const text = s.toWellFormed();
  if (text.length <= MAX_MESSAGE) return text;
  let end = MAX_MESSAGE - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--; // a high surrogate whose pair would be cut off
  return text.slice(0, end) + "…";
}

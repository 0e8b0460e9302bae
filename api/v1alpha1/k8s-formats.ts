// Kubernetes' own formats for the values a DistillationJob passes into its trainer pod (labels, annotations,
// node selectors, tolerations, quantities, env names, sub-paths, object names). Each is stated twice, side by
// side: a CEL rule for the CRD (so the apiserver refuses the DistillationJob with the field path, instead of
// accepting it and refusing the child Job later) and a TypeScript predicate for zod (so the trainer's `validate`
// names the same field). The predicates follow k8s.io/apimachinery/pkg/util/validation; the CEL rules use
// Kubernetes' CEL libraries (format, quantity; available on Kubernetes >= 1.31).
import { z } from "zod";

const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_RE = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);
const QUALIFIED_NAME_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** Kubernetes' quantity grammar (resource.Quantity): a signed decimal, then a binary/decimal suffix or exponent. */
const QUANTITY_RE = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$/;
/** Environment variable names: printable ASCII except `=` (Kubernetes >= 1.32, RelaxedEnvironmentVariableValidation). */
export const ENV_NAME_PATTERN = "^[ -<>-~]+$";

export const LABEL_VALUE_MAX = 63;
export const DNS1123_SUBDOMAIN_MAX = 253;
export const QUALIFIED_NAME_MAX = DNS1123_SUBDOMAIN_MAX + 1 + LABEL_VALUE_MAX;
/** Entries of one map (labels, annotations, node selector) or list (tolerations, env): keeps CEL costs bounded. */
export const MAX_MAP_ENTRIES = 64;

export function isDns1123Subdomain(value: string): boolean {
  return value.length <= DNS1123_SUBDOMAIN_MAX && DNS1123_SUBDOMAIN_RE.test(value);
}

/** A label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters. */
export function isQualifiedName(value: string): boolean {
  const parts = value.split("/");
  if (parts.length > 2) return false;
  const name = parts.at(-1)!;
  if (parts.length === 2 && (parts[0] === "" || !isDns1123Subdomain(parts[0]!))) return false;
  return name.length <= LABEL_VALUE_MAX && QUALIFIED_NAME_RE.test(name);
}

export function isLabelValue(value: string): boolean {
  return value.length <= LABEL_VALUE_MAX && LABEL_VALUE_RE.test(value);
}

/** A non-negative quantity: a string in Kubernetes' grammar, or a plain JSON number. */
export function isQuantity(value: string | number): boolean {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0;
  return QUANTITY_RE.test(value) && !value.startsWith("-");
}

const SUFFIX: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a quantity in base units (cores, bytes), for comparisons; NaN for one that is invalid. */
export function quantityValue(value: string | number): number {
  if (typeof value === "number") return value;
  if (!isQuantity(value)) return Number.NaN;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$/.exec(value)!;
  const suffix = m[2]!;
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix]!;
  return Number(m[1]) * scale;
}

/** A relative path that stays inside its volume (Kubernetes' validateLocalDescendingPath). */
export function isLocalDescendingPath(value: string): boolean {
  return !value.startsWith("/") && !value.split("/").includes("..");
}

/**
 * Every CEL rule declared together with its zod predicate (by celChecked and withRules): a test checks that each
 * rule of the generated CRD is one of them, so no rule is enforced by the apiserver alone.
 */
export const celRulesWithZodTwin = new Set<string>();

/** A CEL rule with its zod twin on a single value (see CrossFieldRule for rules across fields). */
export function celChecked<S extends z.ZodType>(
  schema: S,
  rule: { cel: string; message: string; holds: (value: z.output<S>) => boolean },
): S {
  celRulesWithZodTwin.add(rule.cel);
  return schema
    .refine((v) => rule.holds(v), { message: rule.message })
    .meta({ "x-kubernetes-validations": [{ rule: rule.cel, message: rule.message }] }) as unknown as S;
}

const celIsValid = (format: string, expr: string) => `!format.${format}().validate(${expr}).hasValue()`;

export const LabelValue = celChecked(z.string().max(LABEL_VALUE_MAX), {
  cel: celIsValid("labelValue", "self"),
  message:
    "must be a label value: at most 63 characters, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
  holds: isLabelValue,
});

export const Dns1123Subdomain = celChecked(z.string().min(1).max(DNS1123_SUBDOMAIN_MAX), {
  cel: celIsValid("dns1123Subdomain", "self"),
  message:
    "must be a DNS subdomain: lowercase alphanumerics, '-' or '.', starting and ending with an alphanumeric",
  holds: isDns1123Subdomain,
});

const KEY_MESSAGE =
  "keys must be qualified names ([prefix/]name: name at most 63 alphanumerics, '-', '_' or '.'; prefix a DNS subdomain)";

/** A string map whose keys are label keys (labels, node selectors); values are checked by `value`. */
export function labelMap(value: z.ZodType<string>, lowerCaseKeys = false) {
  const key = lowerCaseKeys ? "k.lowerAscii()" : "k";
  const base = z.record(z.string(), value);
  const checked = celChecked(base, {
    cel: `self.all(k, ${celIsValid("qualifiedName", key)})`,
    message: KEY_MESSAGE,
    holds: (m) => Object.keys(m).every((k) => isQualifiedName(lowerCaseKeys ? k.toLowerCase() : k)),
  });
  return checked
    .meta({ maxProperties: MAX_MAP_ENTRIES })
    .refine((m) => Object.keys(m).length <= MAX_MAP_ENTRIES, {
      message: `at most ${MAX_MAP_ENTRIES} entries`,
    });
}

/**
 * A resource quantity: a string such as `500m` or `8Gi`, or a number (`0.5`, `2`), as a Pod accepts it. The CRD
 * declares it without a type (preserve-unknown-fields) because `x-kubernetes-int-or-string` refuses fractions,
 * and CEL cannot see a typeless field, so this is the one format checked after admission: zod refuses a bad
 * quantity when the operator loads the job, which then fails at once with reason InvalidSpec naming the field.
 */
export const Quantity = z
  .union([z.string(), z.number()])
  .refine(isQuantity, { message: "must be a non-negative quantity such as 2, 0.5, 500m or 8Gi" })
  .meta({ "x-kubernetes-preserve-unknown-fields": true })
  .describe(
    "A Kubernetes resource quantity such as `2`, `0.5`, `500m`, `8Gi` (checked by the operator: a bad one fails the job with reason InvalidSpec).",
  );

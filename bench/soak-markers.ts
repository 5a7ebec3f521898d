/** The markers around the soak section of bench/RESULTS.md (written by soak.ts, kept by run.ts). */
export const SOAK_BEGIN = '<!-- soak:begin -->';
export const SOAK_END = '<!-- soak:end -->';

// The data part of the trainer: datasets, their errors, and the seeded PRNG the engine reuses.
export { loadDataset, channelStatistics, type LoadedDataset, type Normalization } from "./dataset.ts";
export { DataError } from "./errors.ts";
export { Random, deriveSeed, permutation } from "./random.ts";

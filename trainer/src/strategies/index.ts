// The strategy registry: builds the weighting strategy a spec names, for the enabled objectives in order.
import type { StrategySpec } from "../../../api/v1alpha1/index.ts";
import type { ObjectiveName, WeightingStrategy } from "../contracts.ts";
import { CagradStrategy } from "./cagrad.ts";
import { ImtlStrategy } from "./imtl.ts";
import { MgdaStrategy } from "./mgda.ts";
import { FamoStrategy } from "./mokd-amortized.ts";
import { MokdStrategy } from "./mokd.ts";
import { PcgradStrategy } from "./pcgrad.ts";
import { SumStrategy } from "./sum.ts";

export function createStrategy(
  spec: StrategySpec,
  objectiveNames: readonly ObjectiveName[],
): WeightingStrategy {
  switch (spec.name) {
    case "sum":
      return new SumStrategy(spec.weights, objectiveNames);
    case "mokd":
      return new MokdStrategy();
    case "mokd-amortized":
      return new FamoStrategy(spec.famo, objectiveNames.length);
    case "pcgrad":
      return new PcgradStrategy();
    case "mgda":
      return new MgdaStrategy();
    case "cagrad":
      return new CagradStrategy(spec.cagradC);
    case "imtl":
      return new ImtlStrategy();
  }
}

export {
  CagradStrategy,
  FamoStrategy,
  ImtlStrategy,
  MgdaStrategy,
  MokdStrategy,
  PcgradStrategy,
  SumStrategy,
};

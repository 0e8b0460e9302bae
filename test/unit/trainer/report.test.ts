import { describe, expect, it } from "vitest";
import { formatTable, type TableRow } from "../../../trainer/src/report/table.ts";

describe("results table", () => {
  it("aligns model names left and numbers right under a header rule", () => {
    const rows: TableRow[] = [
      { model: "teacher (trained)", parameters: "105866", testAccuracy: "84.36%", bestEpoch: "" },
      { model: "student: mokd", parameters: "52650", testAccuracy: "84.86%", bestEpoch: "4" },
    ];
    expect(formatTable(rows).split("\n")).toEqual([
      "model              parameters  test accuracy  best epoch",
      "-----------------  ----------  -------------  ----------",
      "teacher (trained)      105866         84.36%            ",
      "student: mokd           52650         84.86%           4",
    ]);
  });
});

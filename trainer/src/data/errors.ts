// Errors in the input data (or teacher model files). The CLI maps DataError to ExitCode.BadData (3): no retry
// fixes a missing or malformed file.

export class DataError extends Error {
  /** The file the problem is in (also part of the message). */
  readonly file: string;

  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "DataError";
    this.file = file;
  }
}

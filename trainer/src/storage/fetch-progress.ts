// The fetch initializer's progress document (api/v1alpha1/progress.ts FetchProgress): per input artifact its
// state, bytes done of bytes total and bytes downloaded, served as JSON at GET /progress on the metrics port
// while `trainer fetch` runs. The pod shares one network namespace, so the operator reads the init container at
// the address it reads the trainer at, and puts the bytes into the job's Initializing condition.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  FETCH_PROGRESS_KIND,
  PROGRESS_API_VERSION,
  PROGRESS_PATH,
  type FetchedArtifact,
  type FetchProgress,
} from "../../../api/v1alpha1/index.ts";
import type { ArtifactWatch } from "./fetch.ts";

export class FetchProgressDocument {
  readonly #artifacts: FetchedArtifact[];
  readonly #now: () => Date;
  #updatedAt: Date;

  constructor(inputs: { field: string; uri: string }[], now = () => new Date()) {
    this.#artifacts = inputs.map(({ field, uri }) => ({
      field,
      uri,
      state: "pending",
      bytesDone: 0,
      bytesDownloaded: 0,
      cachedFiles: 0,
    }));
    this.#now = now;
    this.#updatedAt = now();
  }

  /** The watch of input `index` (fetchArtifact reports to it). */
  watch(index: number): ArtifactWatch {
    const artifact = this.#artifacts[index]!;
    return {
      listed: (files, bytesTotal) => {
        Object.assign(artifact, { state: "fetching", files }, bytesTotal !== undefined ? { bytesTotal } : {});
        this.#touch();
      },
      progressed: (bytesDone, bytesDownloaded, cachedFiles) => {
        Object.assign(artifact, { bytesDone, bytesDownloaded, cachedFiles });
        this.#touch();
      },
      finished: (result) => {
        Object.assign(artifact, {
          state: result.downloaded === 0 && result.cached === result.files ? "cached" : "downloaded",
          files: result.files,
          cachedFiles: result.cached,
          bytesDone: result.bytes,
          bytesTotal: result.bytes,
          bytesDownloaded: result.downloaded,
        });
        this.#touch();
      },
    };
  }

  document(): FetchProgress {
    return {
      apiVersion: PROGRESS_API_VERSION,
      kind: FETCH_PROGRESS_KIND,
      artifacts: this.#artifacts.map((a) => ({ ...a })),
      updatedAt: this.#updatedAt.toISOString(),
    };
  }

  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.url?.split("?")[0] !== PROGRESS_PATH) {
      res.writeHead(404).end("not found\n");
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" }).end(`${JSON.stringify(this.document())}\n`);
  };

  #touch(): void {
    this.#updatedAt = this.#now();
  }
}

/**
 * Serves the document on `port` (0: not at all). A port that is taken only costs the live figures: the fetch
 * goes on (its log still has a progress line per artifact every few seconds).
 */
export async function serveFetchProgress(
  document: FetchProgressDocument,
  port: number,
  warn: (message: string) => void,
): Promise<Server | undefined> {
  if (port === 0) return undefined;
  const server = createServer(document.handler);
  try {
    await new Promise<void>((listening, failed) => {
      server.once("error", failed);
      server.listen(port, "0.0.0.0", () => listening());
    });
    return server;
  } catch (error) {
    warn(`fetch progress not served: cannot listen on :${port}: ${(error as Error).message}`);
    return undefined;
  }
}

/** Closes the server and its connections: the trainer listens on the same port next. */
export async function closeFetchProgress(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((closed) => server.close(() => closed()));
}

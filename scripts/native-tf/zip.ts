// A minimal zip reader: enough for the two archives the native-tf install reads (TensorFlow Java's jars and
// the tensorflow-cpu wheel). Built on Node's zlib so the script needs nothing but Node, both here and in a
// container build stage that has no unzip. Reads through a `RangeReader`, so an entry of a remote archive
// can be fetched with HTTP range requests without downloading the whole archive.
import { createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";

export interface RangeReader {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

/** The archive's central directory (zip64 archives are refused: neither pinned input is one). */
export async function readCentralDirectory(reader: RangeReader): Promise<Map<string, ZipEntry>> {
  const tailLength = Math.min(reader.size, 65_557); // EOCD (22 bytes) + the longest comment
  const tail = await reader.read(reader.size - tailLength, tailLength);
  const at = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (at < 0 || tail.readUInt32LE(at) !== EOCD_SIGNATURE)
    throw new Error("no end-of-central-directory record");
  const count = tail.readUInt16LE(at + 10);
  const length = tail.readUInt32LE(at + 12);
  const offset = tail.readUInt32LE(at + 16);
  if (count === 0xffff || offset === 0xffffffff) throw new Error("zip64 archives are not supported");
  return parseCentralDirectory(await reader.read(offset, length), count);
}

function parseCentralDirectory(directory: Buffer, count: number): Map<string, ZipEntry> {
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (directory.readUInt32LE(p) !== CENTRAL_SIGNATURE) throw new Error(`bad central directory entry ${i}`);
    const nameLength = directory.readUInt16LE(p + 28);
    const extraLength = directory.readUInt16LE(p + 30);
    const commentLength = directory.readUInt16LE(p + 32);
    const name = directory.toString("utf8", p + 46, p + 46 + nameLength);
    entries.set(name, {
      name,
      method: directory.readUInt16LE(p + 10),
      crc32: directory.readUInt32LE(p + 16),
      compressedSize: directory.readUInt32LE(p + 20),
      size: directory.readUInt32LE(p + 24),
      localHeaderOffset: directory.readUInt32LE(p + 42),
    });
    p += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Offset of an entry's data: after its local header, whose name/extra lengths may differ from the central one. */
async function dataOffset(reader: RangeReader, entry: ZipEntry): Promise<number> {
  const header = await reader.read(entry.localHeaderOffset, 30);
  if (header.readUInt32LE(0) !== LOCAL_SIGNATURE) throw new Error(`bad local header for ${entry.name}`);
  return entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
}

function checkEntry(entry: ZipEntry, data: Buffer): Buffer {
  if (data.length !== entry.size)
    throw new Error(`${entry.name}: ${data.length} bytes, expected ${entry.size}`);
  if (zlib.crc32(data) !== entry.crc32) throw new Error(`${entry.name}: CRC-32 mismatch`);
  return data;
}

/** A small entry, in memory (read in one range). */
export async function readEntry(reader: RangeReader, entry: ZipEntry): Promise<Buffer> {
  const raw = await reader.read(await dataOffset(reader, entry), entry.compressedSize);
  if (entry.method === METHOD_STORED) return checkEntry(entry, raw);
  if (entry.method === METHOD_DEFLATE) return checkEntry(entry, zlib.inflateRawSync(raw));
  throw new Error(`${entry.name}: unsupported compression method ${entry.method}`);
}

/** Counts bytes and computes CRC-32 of what passes through. */
class Checksum extends Transform {
  crc = 0;
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.crc = zlib.crc32(chunk, this.crc);
    this.bytes += chunk.length;
    done(null, chunk);
  }
}

/** A (large) entry of a local archive, streamed to `target` and checked against its size and CRC-32. */
export async function extractEntryToFile(archive: string, entry: ZipEntry, target: string): Promise<void> {
  const reader = await fileReader(archive);
  const start = await dataOffset(reader, entry);
  const source = createReadStream(archive, { start, end: start + entry.compressedSize - 1 });
  const checksum = new Checksum();
  const stages = entry.method === METHOD_DEFLATE ? [zlib.createInflateRaw(), checksum] : [checksum];
  if (entry.method !== METHOD_DEFLATE && entry.method !== METHOD_STORED)
    throw new Error(`${entry.name}: unsupported compression method ${entry.method}`);
  await pipeline([source, ...stages, createWriteStream(target, { mode: 0o755 })]);
  if (checksum.bytes !== entry.size)
    throw new Error(`${entry.name}: ${checksum.bytes} bytes, expected ${entry.size}`);
  if (checksum.crc !== entry.crc32) throw new Error(`${entry.name}: CRC-32 mismatch`);
}

export async function fileReader(file: string): Promise<RangeReader> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    return {
      size,
      async read(offset, length) {
        const h = await open(file, "r");
        try {
          const buffer = Buffer.alloc(length);
          const { bytesRead } = await h.read(buffer, 0, length, offset);
          if (bytesRead !== length) throw new Error(`${file}: short read at ${offset}`);
          return buffer;
        } finally {
          await h.close();
        }
      },
    };
  } finally {
    await handle.close();
  }
}

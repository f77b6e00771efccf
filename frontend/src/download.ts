// Downloads that need the Bearer token: fetch -> Blob -> object URL -> <a download>.

import { request } from "./api";

export interface Downloaded {
  blob: Blob;
  filename: string;
  /** sha256 hex of the bytes, computed in the browser (null without WebCrypto). */
  sha256: string | null;
  /** The server's X-Checksum-SHA256 header, when sent. */
  serverSha256: string | null;
}

function filenameFrom(resp: Response, fallback: string): string {
  const cd = resp.headers.get("Content-Disposition") ?? "";
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(cd);
  if (star?.[1]) return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
  const plain = /filename="?([^";]+)"?/i.exec(cd);
  return plain?.[1] ?? fallback;
}

export async function sha256Hex(blob: Blob): Promise<string | null> {
  if (!globalThis.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Fetch an API path with the token and save it; optionally verify its checksum. */
export async function download(
  path: string,
  fallbackName: string,
  verify = false,
): Promise<Downloaded> {
  const resp = await request(path);
  const blob = await resp.blob();
  const filename = filenameFrom(resp, fallbackName);
  const sha256 = verify ? await sha256Hex(blob) : null;
  saveBlob(blob, filename);
  return { blob, filename, sha256, serverSha256: resp.headers.get("X-Checksum-SHA256") };
}

import { describe, expect, test } from "bun:test";
import { GET_REQUEST_CACHE_SIZE, GetRequestCache } from "../lib/get-request-cache.ts";

describe("GetRequestCache", () => {
  test("gives a URL's target and keep-alive request, the same objects on every call", () => {
    const cache = new GetRequestCache();
    const entry = cache.get("http://example.com:8080/a?b=1");
    expect(entry.target).toMatchObject({ host: "example.com", port: 8080, path: "/a?b=1" });
    expect(entry.target.origin).toBe("http://example.com:8080");
    const request = new TextDecoder().decode(entry.request);
    expect(request).toStartWith("GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n");
    expect(request).toContain("Connection: keep-alive\r\n");
    expect(cache.get("http://example.com:8080/a?b=1")).toBe(entry);
  });

  test("stays bounded: past its size it starts over", () => {
    const cache = new GetRequestCache();
    const first = cache.get("http://h/0");
    for (let i = 1; i <= GET_REQUEST_CACHE_SIZE; i++) cache.get(`http://h/${i}`);
    expect(cache.get("http://h/0")).not.toBe(first);
  });

  test("throws the URL's one-line error", () => {
    expect(() => new GetRequestCache().get("ftp://h/")).toThrow("unsupported URL scheme ftp:");
  });
});

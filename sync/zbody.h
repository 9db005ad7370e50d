/*
 * zbody.h - the Brotli body codec of a bundle (RFC 7932; docs/PROTOCOL.md, "Body codecs").
 *
 * A bundle's body is zlib unless its header carries BUNDLE_FLAG_BROTLI, which the hub sets
 * only for a device whose pull offered the codec (wire_pull_query.codecs). On the 10k-plan
 * snapshot Brotli at quality 5 with a 4 MiB window is 41 % smaller than zlib at level 4 and
 * inflates faster: plans repeat each other's texts further apart than zlib's 32 KiB window
 * reaches (docs/BENCHMARKS.md has the measurements, with the zlib preset dictionary that
 * was tried first).
 *
 * zbody_pack compresses `raw` into a new buffer with `room` bytes left free in front of the
 * body (the bundle header goes there); *body_len is the compressed length. zbody_unpack
 * decompresses exactly raw_len bytes, never producing more than raw_len + 1 (a body that
 * would grow past raw_len is refused, as zlib's is): CMC_ERR_CORRUPT for a body that is
 * truncated, malformed, longer or shorter than raw_len, or followed by other bytes.
 * CMC_ERR_NOMEM when an allocation fails. Decompression allocates through cmc_malloc; the
 * compressor's own state comes from libc's malloc (Brotli 1.0's encoder exits the process when
 * an allocation fails, so it must not see injected failures; a real out-of-memory on the hub
 * while compressing ends the hub). Thread-safe.
 */
#ifndef CMC_ZBODY_H
#define CMC_ZBODY_H

#include <stddef.h>
#include <stdint.h>

int zbody_pack(const uint8_t *raw, size_t raw_len, size_t room, uint8_t **out, size_t *body_len);
int zbody_unpack(const uint8_t *body, uint32_t body_len, uint32_t raw_len, uint8_t **out);

#endif

/*
 * fuzz_plan_mp - the plan msgpack decoder (plan_unpack), which every PUT of every bundle goes
 * through. Property: a plan that decodes re-encodes to exactly the input bytes (each plan has
 * exactly one encoding, docs/PROTOCOL.md) and decodes again to an equal plan.
 */
#include "tests/fuzz/fuzz.h"

static const struct fuzz_plan_codec mp = {.to_bytes = plan_pack, .from_bytes = plan_unpack};

FUZZ_PLAN_CODEC_TARGET(mp, 1, 2, 12, "seeded-%02ld")

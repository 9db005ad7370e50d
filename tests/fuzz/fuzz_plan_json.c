/*
 * fuzz_plan_json - JSON plan import (plan_from_json: `cmc-hub plan import`, the agent's
 * examples). Property: an imported plan exports to JSON that imports to an equal plan.
 */
#include "tests/fuzz/fuzz.h"

static const struct fuzz_plan_codec json = {.to_text = plan_to_json, .from_text = plan_from_json};

FUZZ_PLAN_CODEC_TARGET(json, 0, 3, 8, "seeded-%02ld.json")

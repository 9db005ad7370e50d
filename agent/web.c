/* Placeholder until the crew's page lands; replaced by the real server. */
#include "agent/web.h"

#include "platform/err.h"

int web_serve(const struct cli_opts *o)
{
    (void)o;
    return cmc_fail(CMC_ERR_STATE, "the crew's web page is not built yet");
}

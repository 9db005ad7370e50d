/* cmc-agent: the device program. The command line lives in agent/cli*.c so tests can drive it. */
#include "agent/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}

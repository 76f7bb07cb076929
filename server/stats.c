/*
 * stats.c - names and help texts of the counters declared in stats.h.
 */
#include "stats.h"

static const struct {
    const char *name;
    const char *help;
} counters[DFD_STAT_COUNT] = {
#define DFD_X_DEF(name, help) {#name, help},
    DFD_COUNTERS(DFD_X_DEF)
#undef DFD_X_DEF
};

const char *dfd_stat_name(enum dfd_counter c)
{
    return counters[c].name;
}

const char *dfd_stat_help(enum dfd_counter c)
{
    return counters[c].help;
}

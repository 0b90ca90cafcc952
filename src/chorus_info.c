/* chorus_info - prints the version, what this node looks like, the reduction
 * kernels in use and every tunable with its value, default and help text. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus.h"
#include "node.h"
#include "reduce.h"
#include "tunables.h"

static void print_wrapped(const char *text, int indent, int width)
{
    int col = indent;
    printf("%*s", indent, "");
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p, ' ');
        int len = sp ? (int)(sp - p) : (int)strlen(p);
        if (col + len > width && col > indent) {
            printf("\n%*s", indent, "");
            col = indent;
        }
        printf("%.*s ", len, p);
        col += len + 1;
        p += len;
        while (*p == ' ')
            p++;
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    int quiet = argc > 1 && !strcmp(argv[1], "-q");
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: chorus_info [-q]\n  -q  tunables only, as NAME=VALUE lines\n");
        return 0;
    }
    chorus_result_t res = chorus_tunables_load(NULL);
    if (res != CHORUS_SUCCESS)
        fprintf(stderr, "chorus_info: %s\n", chorus_get_last_error());
    if (!quiet) {
        const struct chorus_node_info *node = chorus_node_info();
        printf("Chorus %d.%d.%d\n", CHORUS_VERSION_MAJOR, CHORUS_VERSION_MINOR,
               CHORUS_VERSION_PATCH);
        printf("node: %d cores, %d hardware threads, %d NUMA nodes (from %s)\n", node->ncores,
               node->npus, node->nnuma, node->source);
        if (chorus_reduce_init() == CHORUS_SUCCESS)
            printf("reduction kernels: %s\n", chorus_reduce_isa());
        else
            printf("reduction kernels: %s\n", chorus_get_last_error());
        printf("transports: shared memory (this node)\n\n");
        printf("Tunables (environment variables):\n");
    }
    for (size_t i = 0; i < chorus_tunable_count(); i++) {
        const struct chorus_tunable_desc *d = chorus_tunable_get(i);
        char var[64];
        snprintf(var, sizeof var, "CHORUS_%s", d->name);
        const char *set = getenv(var);
        if (quiet) {
            printf("%s=%s\n", var, set ? set : d->default_text);
            continue;
        }
        printf("  %s = %s%s\n", var, set ? set : d->default_text, set ? " (set)" : "");
        printf("      default %s\n", d->default_text);
        print_wrapped(d->help, 6, 78);
    }
    return res == CHORUS_SUCCESS ? 0 : 1;
}

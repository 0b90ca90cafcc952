/*
 * perf_output.c - what the perf tools print: the header (command, versions,
 * ranks, column legend), one table row per size, progress on stderr, and
 * the JSON file of -J that chorus_perf_plot reads.
 *
 * Apart from the run so the table and JSON layouts, which scripts parse,
 * sit together and change together.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* gethostname, sched_getcpu */
#endif

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perf_internal.h"

/* Not in the public API: libchorus exports it (src/reduce.h) and the header
 * shows it when present. Weak, so the tools still link against a library that
 * hides it. */
extern const char *chorus_reduce_isa(void) __attribute__((weak));

extern char **environ;

/* ---- output ---------------------------------------------------------------- */

static const char *fmt_time(char *buf, size_t n, double us)
{
    snprintf(buf, n, us < 1e5 ? "%.2f" : us < 1e6 ? "%.1f" : "%.0f", us);
    return buf;
}

static const char *fmt_bytes(char *buf, size_t n, size_t b)
{
    if (b >= (1u << 30) && b % (1u << 30) == 0)
        snprintf(buf, n, "%zuG", b >> 30);
    else if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(buf, n, "%zuM", b >> 20);
    else if (b >= (1u << 10) && b % (1u << 10) == 0)
        snprintf(buf, n, "%zuK", b >> 10);
    else
        snprintf(buf, n, "%zu", b);
    return buf;
}

/* A header line built piece by piece, printed without trailing blanks. */
typedef struct {
    char s[512];
    size_t n;
} perf_line_t;

static void __attribute__((format(printf, 2, 3))) line_add(perf_line_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->s + l->n, sizeof l->s - l->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->n = l->n + (size_t)k < sizeof l->s ? l->n + (size_t)k : sizeof l->s - 1;
}

static void line_centered(perf_line_t *l, const char *text, int width)
{
    int len = (int)strlen(text), left = (width - len) / 2;
    if (left < 0)
        left = 0;
    line_add(l, "%*s%s%*s", left, "", text, width - len - left > 0 ? width - len - left : 0, "");
}

static void line_print(perf_line_t *l)
{
    while (l->n > 0 && l->s[l->n - 1] == ' ')
        l->n--;
    l->s[l->n] = '\0';
    puts(l->s);
    l->n = 0;
}

#define ROW_LEAD "%12s  %12s  %8s  %6s  %6s"
#define ROW_GROUP "  %8s  %6s  %6s  %6s"
#define ROW_MPI "  %8s  %6s  %6s"

void perf_print_header(perf_ctx_t *x, const char *argv0)
{
    const perf_coll_t *coll = x->coll;
    struct rankinfo { char host[120]; int pid, cpu; } me, *all = NULL;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    me.pid = (int)getpid();
    me.cpu = sched_getcpu();
    if (x->rank == 0)
        all = calloc((size_t)x->nranks, sizeof *all);
    MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (x->rank != 0)
        return;

    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, "\n")] = '\0';
    for (char *t = lib; *t; t++)
        if (*t == '\t')
            *t = ' ';
    const perf_opts_t *o = &x->opt;
    char b1[32], b2[32];

    printf("# %s: %s vs %s\n", strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : argv0,
           coll->chorus_call, o->mpi ? coll->mpi_call : "(no MPI comparison: -m 0)");
    printf("# Command: %s\n", x->cmdline);
    printf("# Chorus %d.%d.%d, reduce kernels %s | %s\n", CHORUS_VERSION_MAJOR,
           CHORUS_VERSION_MINOR, CHORUS_VERSION_PATCH,
           chorus_reduce_isa ? chorus_reduce_isa() : "(not reported)", lib);
    printf("# nRanks %d  minBytes %zu  maxBytes %zu  step: %s  warmup iters: %d  iters: %d"
           "  rounds: %d  validation: %d  time: %s over ranks\n",
           x->nranks, o->min_bytes, o->max_bytes,
           o->step_factor > 1 ? (snprintf(b1, sizeof b1, "%g(factor)", o->step_factor), b1)
                              : (snprintf(b1, sizeof b1, "%s(bytes)",
                                          fmt_bytes(b2, sizeof b2, o->step_bytes)), b1),
           o->warmup, o->iters, o->iters < PERF_MAX_ROUNDS ? o->iters : PERF_MAX_ROUNDS, o->check,
           perf_agg_names[o->agg]);
    printf("# Buffers: %s\n", o->registered ? "chorus_mem_alloc (-R 1: peers on the node map "
                                              "them; zero copy where every rank's qualify)"
                                            : "posix_memalign (-R 0)");
    int env_shown = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "CHORUS_", 7) == 0) {
            printf("%s %s", env_shown++ ? "" : "# Environment:", *e);
        }
    if (env_shown)
        printf("\n");
    printf("#\n# Using ranks:\n");
    for (int r = 0; r < x->nranks; r++)
        printf("#  Rank %3d  Pid %7d  cpu %3d  on %s\n", r, all[r].pid, all[r].cpu, all[r].host);
    free(all);
    printf("#\n");
    printf("# size: S in bytes (%s); count: the count argument of %s;\n",
           coll->whole_buffer ? "the whole buffer of all ranks" : "count x typesize",
           coll->chorus_call);
    printf("# algbw = S / time; busbw = algbw x %s (GB = 1e9 B); #wrong: elements that differ\n",
           coll->busbw_factor(4) == 1.0 ? "1" : coll->busbw_factor(4) > 1.0 ? "2(n-1)/n" : "(n-1)/n");
    if (o->mpi)
        printf("# from the expected value; ratio = Chorus %s busbw / MPI busbw.\n",
               coll->mpi_in_place ? "in-place (like the MPI call, one buffer)" : "out-of-place");
    else
        printf("# from the expected value.\n");
    perf_line_t l = {.n = 0};
    line_add(&l, "#%*s", 51, "");
    line_centered(&l, "out-of-place", 34);
    line_centered(&l, coll->has_in_place ? "in-place" : "in-place (n/a)", 34);
    if (o->mpi)
        line_centered(&l, coll->mpi_call, 26);
    line_print(&l);
    line_add(&l, "#" "%11s  %12s  %8s  %6s  %6s", "size", "count", "type", "redop", "root");
    line_add(&l, ROW_GROUP ROW_GROUP, "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw",
             "#wrong");
    if (o->mpi)
        line_add(&l, ROW_MPI, "time", "busbw", "ratio");
    line_print(&l);
    line_add(&l, "#" "%11s  %12s  %8s  %6s  %6s", "(B)", "(elements)", "", "", "");
    line_add(&l, ROW_GROUP ROW_GROUP, "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
    if (o->mpi)
        line_add(&l, ROW_MPI, "(us)", "(GB/s)", "");
    line_print(&l);
    fflush(stdout);
}

void perf_print_row(const perf_ctx_t *x, const perf_row_t *row)
{
    char s[5][32], g[4][32];
    snprintf(s[0], 32, "%zu", row->size);
    snprintf(s[1], 32, "%zu", row->count);
    snprintf(s[2], 32, "%d", row->root);
    printf(ROW_LEAD, s[0], s[1], perf_type_info[row->type].name,
           x->coll->has_op ? perf_op_names[row->op] : "none", s[2]);
    for (int v = V_OOP; v <= V_IP; v++) {
        if (v == V_IP && !row->has_ip) {
            printf(ROW_GROUP, "n/a", "n/a", "n/a", "n/a");
            continue;
        }
        fmt_time(g[0], 32, row->time_us[v]);
        snprintf(g[1], 32, "%.2f", row->algbw[v]);
        snprintf(g[2], 32, "%.2f", row->busbw[v]);
        if (x->opt.check)
            snprintf(g[3], 32, "%llu", row->wrong[v]);
        else
            snprintf(g[3], 32, "N/A");
        printf(ROW_GROUP, g[0], g[1], g[2], g[3]);
    }
    if (x->opt.mpi) {
        if (row->has_mpi) {
            fmt_time(g[0], 32, row->time_us[V_MPI]);
            snprintf(g[1], 32, "%.2f", row->busbw[V_MPI]);
            if (row->ratio >= 0)
                snprintf(g[2], 32, "%.2f", row->ratio);
            else
                snprintf(g[2], 32, "n/a");
            printf(ROW_MPI, g[0], g[1], g[2]);
        } else {
            printf(ROW_MPI, "n/a", "n/a", "n/a");
        }
    }
    printf("\n");
    fflush(stdout);
}

void perf_progress(perf_ctx_t *x, size_t step, size_t total, const perf_case_t *c, size_t size)
{
    if (x->rank != 0 || x->opt.progress == 0)
        return;
    double t = perf_now_s(), el = t - x->t_start;
    if (!x->progress_tty) {
        /* Off a terminal each update is a line: only for long sweeps, and sparingly. */
        if ((x->opt.progress < 0 && el < PERF_PROGRESS_AFTER_S) ||
            (x->t_progress > 0 && t - x->t_progress < PERF_PROGRESS_AFTER_S))
            return;
    }
    x->t_progress = t;
    char b[32];
    fprintf(stderr, "%s# progress %zu/%zu: %s%s%s, %s bytes, %.0f s elapsed%s",
            x->progress_tty ? "\r\033[K" : "", step + 1, total, perf_type_info[c->type].name,
            x->coll->has_op ? " " : "", x->coll->has_op ? perf_op_names[c->op] : "",
            fmt_bytes(b, sizeof b, size), el, x->progress_tty ? "" : "\n");
    fflush(stderr);
    x->progress_shown = 1;
}

void perf_progress_clear(perf_ctx_t *x)
{
    if (x->rank == 0 && x->progress_tty && x->progress_shown) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        x->progress_shown = 0;
    }
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_count(FILE *f, const char *key, unsigned long long v, int valid)
{
    if (valid)
        fprintf(f, "\"%s\": %llu", key, v);
    else
        fprintf(f, "\"%s\": null", key);
}

static void json_num(FILE *f, const char *key, double v, int valid)
{
    fprintf(f, "\"%s\": ", key);
    if (valid && isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

int perf_write_json(const perf_ctx_t *x, FILE *f, double avg_busbw, double avg_ratio)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    fprintf(f, "{\n  \"tool\": \"%s_perf\"", x->coll->name);
    fprintf(f, ",\n  \"collective\": ");
    json_string(f, x->coll->chorus_call);
    fprintf(f, ",\n  \"mpi_collective\": ");
    json_string(f, x->opt.mpi ? x->coll->mpi_call : "");
    fprintf(f, ",\n  \"command\": ");
    json_string(f, x->cmdline);
    fprintf(f, ",\n  \"hostname\": ");
    json_string(f, host);
    fprintf(f, ",\n  \"chorus_version\": \"%d.%d.%d\",\n  \"reduce_isa\": ", CHORUS_VERSION_MAJOR,
            CHORUS_VERSION_MINOR, CHORUS_VERSION_PATCH);
    json_string(f, chorus_reduce_isa ? chorus_reduce_isa() : "");
    fprintf(f, ",\n  \"nranks\": %d,\n  \"type\": ", x->nranks);
    json_string(f, x->opt.type_arg);
    fprintf(f, ",\n  \"op\": ");
    json_string(f, x->coll->has_op ? x->opt.op_arg : "none");
    fprintf(f, ",\n  \"root\": %d,\n  \"iters\": %d,\n  \"warmup\": %d,\n  \"check\": %d,\n"
               "  \"average\": \"%s\",\n  \"in_place\": %s,\n  \"rows\": [",
            x->coll->has_root ? x->opt.root : -1, x->opt.iters, x->opt.warmup, x->opt.check,
            perf_agg_names[x->opt.agg], x->coll->has_in_place ? "true" : "false");
    for (size_t k = 0; k < x->nrows; k++) {
        const perf_row_t *r = &x->rows[k];
        fprintf(f, "%s\n    {\"size\": %zu, \"count\": %zu, \"type\": \"%s\", \"op\": \"%s\", "
                   "\"root\": %d,\n     ",
                k ? "," : "", r->size, r->count, perf_type_info[r->type].name,
                x->coll->has_op ? perf_op_names[r->op] : "none", r->root);
        json_num(f, "oop_time_us", r->time_us[V_OOP], 1);
        fprintf(f, ", ");
        json_num(f, "oop_algbw", r->algbw[V_OOP], 1);
        fprintf(f, ", ");
        json_num(f, "oop_busbw", r->busbw[V_OOP], 1);
        fprintf(f, ", ");
        json_count(f, "oop_wrong", r->wrong[0], x->opt.check);
        fprintf(f, ",\n     ");
        json_num(f, "ip_time_us", r->time_us[V_IP], r->has_ip);
        fprintf(f, ", ");
        json_num(f, "ip_algbw", r->algbw[V_IP], r->has_ip);
        fprintf(f, ", ");
        json_num(f, "ip_busbw", r->busbw[V_IP], r->has_ip);
        fprintf(f, ", ");
        json_count(f, "ip_wrong", r->wrong[1], r->has_ip && x->opt.check);
        fprintf(f, ",\n     ");
        json_num(f, "mpi_time_us", r->time_us[V_MPI], r->has_mpi);
        fprintf(f, ", ");
        json_num(f, "mpi_algbw", r->algbw[V_MPI], r->has_mpi);
        fprintf(f, ", ");
        json_num(f, "mpi_busbw", r->busbw[V_MPI], r->has_mpi);
        fprintf(f, ", ");
        json_num(f, "ratio", r->ratio, r->has_mpi && r->ratio >= 0);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"oob_values\": %llu,\n  \"wrong_values\": %llu,\n  ", x->oob, x->wrong);
    json_num(f, "avg_busbw", avg_busbw, x->busbw_n > 0);
    fprintf(f, ",\n  ");
    json_num(f, "avg_ratio", avg_ratio, x->ratio_n > 0);
    fprintf(f, ",\n  \"registered\": %d", x->opt.registered);
    fprintf(f, ",\n  \"membw_probe_bytes\": %zu,\n  ", x->opt.probe_bytes);
    json_num(f, "membw_copy_all_gbps", x->membw.copy_all, x->membw.probes > 0);
    fprintf(f, ",\n  ");
    json_num(f, "membw_copy_one_gbps", x->membw.copy_one, x->membw.probes > 0);
    fprintf(f, ",\n  ");
    json_num(f, "busbw_ceiling_gbps", perf_busbw_ceiling(x), perf_busbw_ceiling(x) > 0);
    fprintf(f, ",\n  \"result\": \"%s\"\n}\n", x->oob || x->wrong ? "FAILED" : "OK");
    if (fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", x->opt.json_path, strerror(errno));
        return -1;
    }
    return 0;
}

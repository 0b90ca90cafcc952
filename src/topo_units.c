/* topo_units.c - the units of topology files. Bytes and bits are told apart
 * by case (GB/s is bytes, Gb/s and Gbit/s are bits), as vendors write them;
 * decimal prefixes are powers of 1000, the binary ones (GiB/s) of 1024. */
#include "topo_units.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit {
    const char *name;
    double factor;
};

static const struct unit bandwidth_units[] = {
    {"B/s", 1},          {"KB/s", 1e3},        {"MB/s", 1e6},        {"GB/s", 1e9},
    {"TB/s", 1e12},      {"KiB/s", 1024.0},    {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0},
    {"TiB/s", 1099511627776.0},                {"bit/s", 1 / 8.0},   {"Kbit/s", 1e3 / 8},
    {"Mbit/s", 1e6 / 8}, {"Gbit/s", 1e9 / 8},  {"Tbit/s", 1e12 / 8}, {"Kb/s", 1e3 / 8},
    {"Mb/s", 1e6 / 8},   {"Gb/s", 1e9 / 8},    {"Tb/s", 1e12 / 8},   {NULL, 0},
};

static const struct unit latency_units[] = {
    {"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ns", 1e-9}, {NULL, 0},
};

static const struct unit none_units[] = {{"", 1}, {NULL, 0}};

static const struct unit *units_of(topo_unit_kind_t kind)
{
    return kind == TOPO_UNIT_BANDWIDTH ? bandwidth_units
           : kind == TOPO_UNIT_LATENCY ? latency_units
                                       : none_units;
}

static const char *units_hint(topo_unit_kind_t kind)
{
    return kind == TOPO_UNIT_BANDWIDTH ? "GB/s, MB/s, Gbit/s, Gb/s, GiB/s ..."
           : kind == TOPO_UNIT_LATENCY ? "us, ns, ms, s"
                                       : "none";
}

int topo_parse_quantity(const char *text, topo_unit_kind_t kind, double *out, char *why,
                        size_t whylen)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    /* strtod alone would take hex, "inf" and "nan": keep to decimal text */
    size_t n = strspn(p, "0123456789.eE+-");
    char num[48];
    if (n == 0 || n >= sizeof num) {
        snprintf(why, whylen, "'%.40s' is not a number%s", text,
                 kind == TOPO_UNIT_NONE ? "" : " with a unit");
        return -1;
    }
    memcpy(num, p, n);
    num[n] = '\0';
    char *end;
    double v = strtod(num, &end);
    if (end != num + n || !isfinite(v)) {
        snprintf(why, whylen, "'%s' is not a number", num);
        return -1;
    }
    if (v < 0 || (v == 0 && num[0] == '-')) {
        snprintf(why, whylen, "%s is negative", num);
        return -1;
    }
    p += n;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t ulen = strlen(p);
    while (ulen && (p[ulen - 1] == ' ' || p[ulen - 1] == '\t'))
        ulen--;
    if (ulen == 0 && kind != TOPO_UNIT_NONE) {
        snprintf(why, whylen, "'%s' needs a unit (%s)", num, units_hint(kind));
        return -1;
    }
    for (const struct unit *u = units_of(kind); u->name; u++) {
        if (strlen(u->name) == ulen && memcmp(u->name, p, ulen) == 0) {
            double r = v * u->factor;
            if (!isfinite(r)) {
                snprintf(why, whylen, "%s %s is out of range", num, u->name);
                return -1;
            }
            *out = r;
            return 0;
        }
    }
    if (kind == TOPO_UNIT_NONE)
        snprintf(why, whylen, "'%.40s' is not a plain number", text);
    else
        snprintf(why, whylen, "unknown unit '%.*s' (use %s)", (int)(ulen > 20 ? 20 : ulen), p,
                 units_hint(kind));
    return -1;
}

void topo_format_quantity(double v, topo_unit_kind_t kind, char *buf, size_t len)
{
    const char *unit = kind == TOPO_UNIT_BANDWIDTH ? "GB/s" : kind == TOPO_UNIT_LATENCY ? "us" : "";
    double scale = kind == TOPO_UNIT_BANDWIDTH ? 1e9 : kind == TOPO_UNIT_LATENCY ? 1e-6 : 1;
    /* the shortest text that reads back exactly: 6 digits, else 17 */
    static const int digits[] = {6, 17};
    for (int i = 0; i < 2; i++) {
        snprintf(buf, len, "%.*g%s%s", digits[i], v / scale, *unit ? " " : "", unit);
        double back;
        char why[8];
        if (topo_parse_quantity(buf, kind, &back, why, sizeof why) == 0 && back == v)
            return;
    }
    /* base units are exact with 17 significant digits */
    unit = kind == TOPO_UNIT_BANDWIDTH ? "B/s" : kind == TOPO_UNIT_LATENCY ? "s" : "";
    snprintf(buf, len, "%.17g%s%s", v, *unit ? " " : "", unit);
}

void topo_human_quantity(double v, topo_unit_kind_t kind, char *buf, size_t len)
{
    if (kind == TOPO_UNIT_BANDWIDTH) {
        if (v >= 1e12)
            snprintf(buf, len, "%.4g TB/s", v / 1e12);
        else if (v >= 1e9)
            snprintf(buf, len, "%.4g GB/s", v / 1e9);
        else
            snprintf(buf, len, "%.4g MB/s", v / 1e6);
    } else if (kind == TOPO_UNIT_LATENCY) {
        if (v >= 1e-3)
            snprintf(buf, len, "%.4g ms", v * 1e3);
        else if (v >= 1e-8 || v == 0) /* 0.2 us reads better than 200 ns */
            snprintf(buf, len, "%.4g us", v * 1e6);
        else
            snprintf(buf, len, "%.4g ns", v * 1e9);
    } else {
        snprintf(buf, len, "%.4g", v);
    }
}

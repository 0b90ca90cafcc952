/* topo_units.h - bandwidths and latencies with units, as topology files and
 * the topology tool write them ("210 GB/s", "400 Gbit/s", "0.7 us"). */
#ifndef CHORUS_TOPO_UNITS_H
#define CHORUS_TOPO_UNITS_H

#include <stddef.h>

typedef enum {
    TOPO_UNIT_BANDWIDTH, /* bytes/s: B/s KB/s MB/s GB/s TB/s, KiB/s..TiB/s, bit/s..Tbit/s, Gb/s */
    TOPO_UNIT_LATENCY,   /* seconds: s ms us (or µs) ns */
    TOPO_UNIT_NONE       /* a plain number */
} topo_unit_kind_t;

/* Parses "<number> <unit>" (the space optional) into bytes/s or seconds.
 * Only decimal numbers (no hex, inf or nan); negative values are refused.
 * Returns 0, or -1 with the reason in why. */
int topo_parse_quantity(const char *text, topo_unit_kind_t kind, double *out, char *why,
                        size_t whylen);

/* Formats v for a topology file in GB/s or us, the unit people read, when
 * that text parses back to exactly v; otherwise in B/s or s with 17 digits
 * (always exact). */
void topo_format_quantity(double v, topo_unit_kind_t kind, char *buf, size_t len);

/* Formats v for people: 4 significant digits in a fitting unit. */
void topo_human_quantity(double v, topo_unit_kind_t kind, char *buf, size_t len);

#endif

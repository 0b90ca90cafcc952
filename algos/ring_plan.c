/* algos/ring_plan.c - placeholder, being written */
typedef int placeholder_ring_plan;

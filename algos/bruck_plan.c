/* algos/bruck_plan.c - placeholder, being written */
typedef int placeholder_bruck_plan;

/* algos/plan.c - placeholder, being written */
typedef int placeholder_plan;

/* algos/pairwise_plan.c - placeholder, being written */
typedef int placeholder_pairwise_plan;

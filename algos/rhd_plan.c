/* algos/rhd_plan.c - placeholder, being written */
typedef int placeholder_rhd_plan;

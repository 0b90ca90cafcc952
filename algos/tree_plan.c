/* algos/tree_plan.c - placeholder, being written */
typedef int placeholder_tree_plan;

/* tests/plan_model.c - placeholder, being written */
typedef int placeholder_plan_model;

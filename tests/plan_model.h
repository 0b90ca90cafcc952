/* placeholder */
#ifndef PLAN_MODEL_H
#define PLAN_MODEL_H
#endif

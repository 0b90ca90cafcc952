/* placeholder */
#ifndef TCP_IMPL_H
#define TCP_IMPL_H
#endif

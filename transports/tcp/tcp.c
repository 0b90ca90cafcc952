/* transports/tcp/tcp.c - placeholder, being written */
typedef int placeholder_tcp;

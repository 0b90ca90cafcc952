/* transports/tcp/tcp_conn.c - placeholder, being written */
typedef int placeholder_tcp_conn;

/*
 * heartbeat.h - heartbeats between routers and members (router and worker roles):
 * every `heartbeat` each loop pings the peers whose owner tracks them (a router's
 * members, a worker's link to its router) and closes a peer that sent nothing for
 * heartbeat x heartbeat_misses. Any bytes count as a sign of life; a ping is sent only
 * when none is in flight.
 */
#ifndef DFD_HEARTBEAT_H
#define DFD_HEARTBEAT_H

#include <stdint.h>

#include "conn.h"

struct dfd_server;

/* Starts the tick on every loop (before the loop threads run). */
void dfd_heartbeat_start(struct dfd_server *srv);

/* 1 when msgid answers our ping on c (consumed), 0 otherwise. */
int dfd_heartbeat_answered(dfd_conn *c, uint32_t msgid);

#endif /* DFD_HEARTBEAT_H */

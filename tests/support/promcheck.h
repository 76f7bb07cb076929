/*
 * promcheck.h - checks a Prometheus text exposition the way a scraper reads it.
 *
 * Contract
 *   promcheck() runs python3 with prometheus_client's parser
 *   (python3-prometheus-client, installed by mk/deps.sh) on the text, plus what the
 *   parser lets through: HELP before TYPE before the samples, one family at a time,
 *   valid names, no negative counter, cumulative buckets ending at +Inf equal to
 *   _count; and the naming rules of https://prometheus.io/docs/practices/naming/ the
 *   project keeps: a counter's name ends in _total and only a counter's does, a unit
 *   (seconds, bytes) is the last word of a name (before _total), and `outcome` label
 *   values are lower case. It returns every sample as a line
 *   "name{k=v,...} value" (labels sorted, the value as an integer) for
 *   promcheck_sample(), or fails the running cmocka test with the checker's message.
 *
 * Ownership: promcheck() returns malloc'd text, the caller frees it. Must be called
 * from a cmocka test; temporary files go to $TMPDIR (or /tmp) and are removed.
 */
#ifndef DAFFI_TEST_PROMCHECK_H
#define DAFFI_TEST_PROMCHECK_H

/* Checks text (NUL-terminated) as above; returns the samples. */
char *promcheck(const char *text);

/* The value of the sample line "key value" in out (promcheck()'s result, e.g.
 * key "daffid_plugins{}"), or -1 when there is none. */
long long promcheck_sample(const char *out, const char *key);

/* The value of the sample "name VALUE" (no labels) in text, the raw exposition, as a
 * double; fails the test when there is none. */
double promcheck_value(const char *text, const char *name);

/* GET path from an HTTP listener on 127.0.0.1:port (HTTP/1.0, read to the end).
 * Returns the whole response, head and body, malloc'd (the caller frees it); fails
 * the test when nothing comes within EXPECT_TIMEOUT_MS. */
char *promcheck_http_get(int port, const char *path);

/* promcheck_http_get(port, "/metrics") that must answer 200: returns its body (the
 * exposition, malloc'd) after checking it with promcheck(); *samples (may be NULL)
 * gets promcheck()'s samples, the caller frees them. */
char *promcheck_scrape(int port, char **samples);

#endif /* DAFFI_TEST_PROMCHECK_H */

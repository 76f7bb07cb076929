/*
 * config.h - reading daffid's configuration directory.
 *
 * Files: every "*.ini" in the directory, in strcmp order; dotfiles and other
 * extensions are skipped. Sections [server], [limits], [log], [admin] may appear in
 * any file, a later file overriding an earlier key. A file with a [plugin] section
 * declares one plugin; its [config] section is free-form and handed to the plugin.
 * Any other section, an unknown key, a bad value or a duplicate plugin name is an
 * error naming file:line, the section and the key. A missing plugin .so is an error
 * too.
 *
 * Overrides (-o): "section.key=value" for server sections, "NAME:plugin.key=value" or
 * "NAME:config.key=value" for the plugin named NAME, "@FILE" for one more ini file
 * (read then, as if it came after the directory's files). Applied in order, after all
 * files.
 *
 * Values: sizes take binary units (512, 64K, 32M, 1G: K = 1024); durations take
 * ms, s, m, h (250ms, 5s, 2m; a bare number is milliseconds); booleans yes/no,
 * true/false, on/off, 1/0.
 */
#ifndef DFD_CONFIG_H
#define DFD_CONFIG_H

#include "config-t.h"

/* Loads dir and the overrides into *cfg (zeroed first). Returns 0, or -1 with every
 * problem appended to errs (owned by the caller: dfd_errors_free). On -1, *cfg holds
 * nothing that needs freeing. check_files = 1 also requires each plugin path to exist
 * and be a readable regular file. */
int dfd_config_load(dfd_config *cfg, const char *dir, const char *const *overrides,
                    size_t noverrides, int check_files, dfd_errors *errs);

void dfd_config_free(dfd_config *cfg);

void dfd_errors_add(dfd_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dfd_errors_free(dfd_errors *errs);

/* Value parsers, exposed for the tests and the admin socket. Each returns 0 and stores
 * the value, or -1 (out of range, trailing garbage, empty). */
int dfd_parse_size(const char *text, size_t *out);
int dfd_parse_duration_ms(const char *text, uint64_t *out);
int dfd_parse_bool(const char *text, int *out);
int dfd_parse_uint(const char *text, unsigned long max, unsigned long *out);

const char *dfd_role_name(dfd_role role);
/* Writes a listen or router address as it is written in the configuration
 * ("tls://host:port", "tcp://[v6]:port", "unix:///path") into buf (n bytes). Returns buf. */
const char *dfd_addr_format(const daffi_addr *a, char *buf, size_t n);
/* 1 when a and b are the same address (both parsed by daffi_addr_parse). */
int dfd_addr_same(const daffi_addr *a, const daffi_addr *b);
/* 1 when a and b listen on the same addresses in the same order. */
int dfd_listen_same(const dfd_config *a, const dfd_config *b);

/* 1 when v (a router value) names NATS servers: its first item is nats:// (later ones
 * may be tls://). A worker with such a router joins NATS (docs/NATS.md); a router
 * value that starts with tls:// is a daffid router reached over TLS. */
int dfd_cfg_is_nats_url(const char *v);

/* 1 when cfg makes the process a NATS member or gateway (its loop 0 then drives the
 * NATS connection: nats-io.h). */
int dfd_cfg_uses_nats(const dfd_config *cfg);

/* Prints every key the reader knows, one per line: SECTION.KEY for the server's
 * sections, plugin.KEY for a plugin's (daffid --keys; shell completion reads it). */
void dfd_config_list_keys(FILE *out);

#endif /* DFD_CONFIG_H */

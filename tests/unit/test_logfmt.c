/*
 * test_logfmt.c - daffid's log lines (server/logfmt.c, log.c): values that hold
 * anything are quoted and escaped so that every line is logfmt; [log] format = json
 * writes the same fields as one JSON object per line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"
#include "logfmt.h"

static void test_plain_values_stay_bare_and_others_are_quoted(void **state)
{
    (void)state;
    char b[128];
    assert_string_equal(dfd_logfmt_value(b, sizeof(b), "calc.so"), "calc.so");
    assert_string_equal(dfd_logfmt_value(b, sizeof(b), ""), "\"\"");
    assert_string_equal(dfd_logfmt_value(b, sizeof(b), "served 0 calls"), "\"served 0 calls\"");
    assert_string_equal(dfd_logfmt_value(b, sizeof(b), "a=b"), "\"a=b\"");
    assert_string_equal(dfd_logfmt_value(b, sizeof(b), "say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
    assert_string_equal(dfd_logfmt_value(b, sizeof(b), "two\nlines\t\x01"),
                        "\"two\\nlines\\t\\x01\"");
    assert_string_equal(dfd_logfmt_value_n(b, sizeof(b), "ab\0cd", 5), "\"ab\\x00cd\"");
}

static void test_a_value_too_long_is_cut_but_stays_well_formed(void **state)
{
    (void)state;
    char b[8], line[64];
    dfd_logfmt_value(b, sizeof(b), "a \"quoted\" value");
    assert_true(strlen(b) < sizeof(b));
    assert_int_equal(b[0], '"');
    assert_int_equal(b[strlen(b) - 1], '"');
    snprintf(line, sizeof(line), "k=%s", b);
    assert_int_equal(dfd_logfmt_valid(line), 1);
}

static void test_lines_are_checked_pair_by_pair(void **state)
{
    (void)state;
    assert_int_equal(dfd_logfmt_valid("a=1 b=\"x y\" c=-"), 1);
    assert_int_equal(dfd_logfmt_valid("a=1 b=x y"), 0);      /* bare value with a space */
    assert_int_equal(dfd_logfmt_valid("a=\"unterminated"), 0);
    assert_int_equal(dfd_logfmt_valid("=1"), 0);
    assert_int_equal(dfd_logfmt_valid("a=1 "), 0);
    assert_int_equal(dfd_logfmt_valid("a=\"bad \\q\""), 0);
}

static void test_a_line_becomes_json_members(void **state)
{
    (void)state;
    char out[256], doc[300];
    assert_int_equal(dfd_logfmt_to_json("plugin=calc msg=\"say \\\"hi\\\"\\n\\x01\"", out,
                                        sizeof(out)), 0);
    snprintf(doc, sizeof(doc), "{\"x\":1%s}", out);
    json_error_t e;
    json_t *j = json_loads(doc, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "plugin")), "calc");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "say \"hi\"\n\x01");
    json_decref(j);
    assert_int_equal(dfd_logfmt_to_json("not logfmt", out, sizeof(out)), -1);
}

/* dfd_log with format = json: one JSON object per line with ts, level, event and the
 * fields; plugin messages are the msg field, whatever they hold. */
static void test_json_format_writes_one_object_per_line(void **state)
{
    (void)state;
    char path[] = "/tmp/daffid-logfmt.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd != -1);
    int saved = dup(2);
    assert_true(dup2(fd, 2) != -1);
    dfd_log_setup(DAFFI_LOG_INFO, DFD_LOG_STDERR, DFD_LOG_JSON, "test");
    char v[64];
    dfd_info("test.event", "n=%d what=%s", 7, dfd_logfmt_value(v, sizeof(v), "a \"b\""));
    daffi_log(NULL, DAFFI_LOG_WARN, "served %d calls, \"all\" of them", 3);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    dfd_log_setup(DAFFI_LOG_INFO, DFD_LOG_STDERR, DFD_LOG_TEXT, "test");

    FILE *f = fdopen(fd, "r");
    assert_non_null(f);
    rewind(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (j == NULL)
            fail_msg("not JSON: %s (%s)", line, e.text);
        assert_non_null(json_string_value(json_object_get(j, "ts")));
        if (n == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "event")), "test.event");
            assert_string_equal(json_string_value(json_object_get(j, "n")), "7");
            assert_string_equal(json_string_value(json_object_get(j, "what")), "a \"b\"");
        } else {
            assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
            assert_string_equal(json_string_value(json_object_get(j, "msg")),
                                "served 3 calls, \"all\" of them");
        }
        json_decref(j);
        n++;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values_stay_bare_and_others_are_quoted),
        cmocka_unit_test(test_a_value_too_long_is_cut_but_stays_well_formed),
        cmocka_unit_test(test_lines_are_checked_pair_by_pair),
        cmocka_unit_test(test_a_line_becomes_json_members),
        cmocka_unit_test(test_json_format_writes_one_object_per_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

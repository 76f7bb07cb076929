/*
 * test_auth_tokens.c - the [auth] tokens file (server/auth-tokens.c): what a line may
 * hold, the reasons a file is refused (with its line), and the lookup: a token finds
 * its own name and nothing else finds anything; and the rules of [auth] call.ID (which
 * rule applies to an identity, what a glob lets through).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

static void test_parse_and_match(void **state)
{
    (void)state;
    static const char text[] = "# who and their tokens\n"
                               "\n"
                               "alice  alices-token-0123456789\n"
                               "\tbob@example.com\tbobs-token-0123456789abcdef   \r\n"
                               "carol carols-token-0123456789"; /* no final newline */
    char why[200] = "";
    dfd_tokens *t = dfd_tokens_parse(text, sizeof(text) - 1, why, sizeof(why));

    assert_non_null(t);
    assert_int_equal(dfd_tokens_count(t), 3);
    assert_string_equal(dfd_tokens_match(t, "alices-token-0123456789", 23), "alice");
    assert_string_equal(dfd_tokens_match(t, "bobs-token-0123456789abcdef", 27),
                        "bob@example.com");
    assert_string_equal(dfd_tokens_match(t, "carols-token-0123456789", 23), "carol");
    /* a prefix, a longer string, another case, nothing: no match */
    assert_null(dfd_tokens_match(t, "alices-token-012345678", 22));
    assert_null(dfd_tokens_match(t, "alices-token-01234567890", 24));
    assert_null(dfd_tokens_match(t, "ALICES-TOKEN-0123456789", 23));
    assert_null(dfd_tokens_match(t, "", 0));
    assert_null(dfd_tokens_match(NULL, "alices-token-0123456789", 23));
    dfd_tokens_free(t);
}

/* Parses text and expects the refusal reason want. */
static void refused(const char *text, const char *want)
{
    char why[200] = "";
    dfd_tokens *t = dfd_tokens_parse(text, strlen(text), why, sizeof(why));

    if (t != NULL)
        fail_msg("accepted: %s", text);
    if (strstr(why, want) == NULL)
        fail_msg("'%s': got '%s', want '%s'", text, why, want);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("alice short\n", "line 1: token shorter than 16 characters");
    refused("# ok\nalice\n", "line 2: missing token after the name");
    refused("al!ce alices-token-0123456789\n", "line 1: a name is 1-64 characters");
    refused("alice alices-token-0123456789 extra\n", "line 1: unexpected text after the token");
    refused("alice alices-token-0123456789\nalice other-token-0123456789\n",
            "line 2: this name has a token already");
    refused("alice alices-token-0123456789\nbob alices-token-0123456789\n",
            "line 2: this token is another name's already");
    refused("alice alices-\x01token-0123456789\n", "line 1: unexpected text after the token");
}

static void test_rules(void **state)
{
    (void)state;
    char *carol_globs[] = {"echo", "calc.*"};
    char *any_globs[] = {"ping*"};
    dfd_auth_rule rules[] = {
        {DFD_AUTH_CALL, "carol", carol_globs, 2},
        {DFD_AUTH_CALL, "*", any_globs, 1},
    };
    const dfd_auth_rule *r = dfd_auth_rule_for(rules, 2, DFD_AUTH_CALL, "carol");
    assert_ptr_equal(r, &rules[0]);
    assert_true(dfd_auth_rule_allows(r, "echo", 4));
    assert_true(dfd_auth_rule_allows(r, "calc.add", 8));
    assert_false(dfd_auth_rule_allows(r, "echo_after", 10));
    assert_false(dfd_auth_rule_allows(r, "calc", 4));
    /* another identity gets "*"'s; no serve rule at all: anything goes (NULL) */
    assert_ptr_equal(dfd_auth_rule_for(rules, 2, DFD_AUTH_CALL, "dave"), &rules[1]);
    assert_null(dfd_auth_rule_for(rules, 2, DFD_AUTH_SERVE, "dave"));
    assert_true(dfd_auth_rule_allows(NULL, "anything", 8));
    /* without "*", an identity no rule covers may call nothing */
    r = dfd_auth_rule_for(rules, 1, DFD_AUTH_CALL, "dave");
    assert_non_null(r);
    assert_false(dfd_auth_rule_allows(r, "echo", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_match),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

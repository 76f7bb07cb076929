/*
 * test_manpages.c - the API reference covers the API: every function the public
 * headers <daffi/plugin.h> and <daffi/client.h> declare is named in the NAME section
 * of a section-3 page (packaging/man/NAME.3.scd), so a function added without its
 * documentation fails the suite. Also: each page builds with scdoc, is named after
 * the first name of its NAME line (`make install` links every other name to it, so
 * `man daffi_arg_int` opens daffi_arg(3)), no name belongs to two pages, and every
 * daffi_*(3) a page refers to exists.
 *
 * Runs from the repository root (tests/run.sh does).
 */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define MAN_DIR "packaging/man"
#define MAX_NAMES 512

static const char *const headers[] = {
    "sdk/include/daffi/plugin.h",
    "sdk/include/daffi/client.h",
};

/* A set of names, each with the page it came from. */
typedef struct names {
    char *name[MAX_NAMES];
    char *page[MAX_NAMES];
    size_t n;
} names;

static void names_add(names *s, const char *name, size_t len, const char *page)
{
    assert_true(s->n < MAX_NAMES);
    s->name[s->n] = strndup(name, len);
    s->page[s->n] = page ? strdup(page) : NULL;
    s->n++;
}

static long names_find(const names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->name[i], name) == 0)
            return (long)i;
    return -1;
}

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->name[i]);
        free(s->page[i]);
    }
    s->n = 0;
}

/* Reads a whole file (NUL-terminated, malloc'd) or fails the test. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s (run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int is_ident(int c)
{
    return isalnum(c) || c == '_';
}

/* The functions a header declares: on a line that starts a declaration (column 0,
 * not a comment, preprocessor line, typedef or brace), the daffi_* identifier that
 * is followed by '('. */
static void header_functions(const char *path, names *out)
{
    char *text = slurp(path);
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (!isalpha((unsigned char)line[0]) || strncmp(line, "typedef", 7) == 0 ||
            (strncmp(line, "struct", 6) == 0 && strchr(line, '(') == NULL))
            continue;
        for (char *p = strstr(line, "daffi_"); p != NULL; p = strstr(p + 1, "daffi_")) {
            if (p > line && is_ident((unsigned char)p[-1]))
                continue;
            size_t len = 0;
            while (is_ident((unsigned char)p[len]))
                len++;
            if (p[len] == '(') {
                names_add(out, p, len, path);
                break;
            }
        }
    }
    free(text);
}

/* The names of a page's NAME section ("a, b, c - what they do"), into out, each
 * with the page's name. Returns the first name (malloc'd). */
static char *page_names(const char *path, const char *page, names *out)
{
    char *text = slurp(path);
    char *sec = strstr(text, "\n# NAME\n");
    if (sec == NULL)
        fail_msg("%s: no NAME section", path);
    char *p = sec + strlen("\n# NAME\n");
    while (*p == '\n')
        p++;
    char *end = strstr(p, " - ");
    char *nl = strchr(p, '\n');
    if (end == NULL || (nl != NULL && nl < end))
        fail_msg("%s: the NAME line is not \"name, name... - summary\"", path);
    char *first = NULL;
    while (p < end) {
        size_t len = strcspn(p, ", ");
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        if (len > 0) {
            if (first == NULL)
                first = strndup(p, len);
            names_add(out, p, len, page);
        }
        p += len;
        while (p < end && (*p == ',' || *p == ' '))
            p++;
    }
    free(text);
    assert_non_null(first);
    return first;
}

/* Every packaging/man/NAME.3.scd: its page name (without ".3.scd"). */
static size_t section3_pages(char pages[][128], size_t max)
{
    DIR *d = opendir(MAN_DIR);
    size_t n = 0;
    if (d == NULL)
        fail_msg("cannot open %s (run from the repository root)", MAN_DIR);
    for (struct dirent *e; (e = readdir(d)) != NULL && n < max;) {
        size_t len = strlen(e->d_name);
        if (len > 6 && strcmp(e->d_name + len - 6, ".3.scd") == 0)
            snprintf(pages[n++], 128, "%.*s", (int)(len - 6), e->d_name);
    }
    closedir(d);
    return n;
}

static void test_every_public_function_is_named_in_a_section_3_page(void **state)
{
    (void)state;
    names funcs = {0}, documented = {0};
    char pages[64][128], path[300];
    size_t np = section3_pages(pages, 64);

    assert_true(np > 0);
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
        header_functions(headers[i], &funcs);
    assert_true(funcs.n > 50); /* the parser found the declarations */
    for (size_t i = 0; i < np; i++) {
        snprintf(path, sizeof(path), "%s/%s.3.scd", MAN_DIR, pages[i]);
        free(page_names(path, pages[i], &documented));
    }
    char missing[8192] = "";
    size_t nmissing = 0;
    for (size_t i = 0; i < funcs.n; i++) {
        if (names_find(&documented, funcs.name[i]) != -1)
            continue;
        nmissing++;
        size_t l = strlen(missing);
        snprintf(missing + l, sizeof(missing) - l, "  %s (%s)\n", funcs.name[i], funcs.page[i]);
    }
    if (nmissing > 0)
        fail_msg("%zu public functions have no man page: name each in the NAME line of a "
                 "packaging/man/*.3.scd page and describe it there:\n%s", nmissing, missing);
    names_free(&funcs);
    names_free(&documented);
}

static void test_pages_are_named_for_their_first_name_and_names_are_unique(void **state)
{
    (void)state;
    names documented = {0};
    char pages[64][128], path[300];
    size_t np = section3_pages(pages, 64);

    for (size_t i = 0; i < np; i++) {
        snprintf(path, sizeof(path), "%s/%s.3.scd", MAN_DIR, pages[i]);
        size_t before = documented.n;
        char *first = page_names(path, pages[i], &documented);
        if (strcmp(first, pages[i]) != 0)
            fail_msg("%s: the first name is %s, the file says %s", path, first, pages[i]);
        free(first);
        /* the title line names the page and section 3 */
        char *text = slurp(path);
        char title[160];
        snprintf(title, sizeof(title), "%s(3) ", pages[i]);
        if (strncmp(text, title, strlen(title)) != 0)
            fail_msg("%s: the first line must begin with \"%s\"", path, title);
        free(text);
        for (size_t k = before; k < documented.n; k++) {
            long other = names_find(&documented, documented.name[k]);
            if (other != (long)k)
                fail_msg("%s is named by both %s(3) and %s(3)", documented.name[k],
                         documented.page[other], documented.page[k]);
        }
    }
    names_free(&documented);
}

static void test_pages_build_with_scdoc_and_their_daffi_references_exist(void **state)
{
    (void)state;
    names documented = {0};
    char pages[64][128], path[300], cmd[400];
    size_t np = section3_pages(pages, 64);

    for (size_t i = 0; i < np; i++) {
        snprintf(path, sizeof(path), "%s/%s.3.scd", MAN_DIR, pages[i]);
        free(page_names(path, pages[i], &documented));
    }
    for (size_t i = 0; i < np; i++) {
        snprintf(path, sizeof(path), "%s/%s.3.scd", MAN_DIR, pages[i]);
        snprintf(cmd, sizeof(cmd), "scdoc < %s > /dev/null 2>&1", path);
        int st = system(cmd);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("scdoc refuses %s (is scdoc installed? mk/deps.sh installs it)", path);
        /* references are written *name*(3) */
        char *text = slurp(path);
        for (char *p = strstr(text, "*daffi_"); p != NULL; p = strstr(p + 1, "*daffi_")) {
            size_t len = 0;
            while (is_ident((unsigned char)p[1 + len]))
                len++;
            if (strncmp(p + 1 + len, "*(3)", 4) != 0)
                continue;
            char ref[128];
            snprintf(ref, sizeof(ref), "%.*s", (int)len, p + 1);
            if (names_find(&documented, ref) == -1)
                fail_msg("%s refers to %s(3), which no page names", path, ref);
        }
        free(text);
    }
    names_free(&documented);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_public_function_is_named_in_a_section_3_page),
        cmocka_unit_test(test_pages_are_named_for_their_first_name_and_names_are_unique),
        cmocka_unit_test(test_pages_build_with_scdoc_and_their_daffi_references_exist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

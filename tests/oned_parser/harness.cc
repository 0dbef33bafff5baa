// Reads a file with OpenNebula's own template lexer and parser, the way
// Template::parse(filename) and NebulaTemplate::load_configuration() do, and
// prints what oned would get as JSON on the file named by argv[2]:
//   {"rc": N, "error": "..." or null, "attributes": [[name, value] or [name, {k: v}], ...]}
// stdout receives what flex's default rule echoes (unmatched characters).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "template_syntax.h"
#include "template_parser.h"

static std::string js(const std::string& s)
{
    std::string o = "\"";
    for (unsigned char c : s)
    {
        if (c == '"' || c == '\\') { o += '\\'; o += (char)c; }
        else if (c < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", c); o += b; }
        else o += (char)c;  // bytes >= 0x80 are passed through (the test decodes them)
    }
    return o + "\"";
}

int main(int argc, char** argv)
{
    if (argc != 3) { fprintf(stderr, "usage: %s TEMPLATE OUT.json\n", argv[0]); return 2; }
    FILE* in = fopen(argv[1], "r");
    if (!in) { perror(argv[1]); return 2; }
    Template t;
    char* error = nullptr;
    yyscan_t scanner = 0;
    template_lex_init(&scanner);
    YY_BUFFER_STATE b = template__create_buffer(in, YY_BUF_SIZE, scanner);
    template__switch_to_buffer(b, scanner);
    int rc = template_parse(&t, &error, scanner);
    fclose(in);
    template__delete_buffer(b, scanner);
    template_lex_destroy(scanner);
    FILE* out = fopen(argv[2], "w");
    if (!out) { perror(argv[2]); return 2; }
    std::string o = "{\"rc\": " + std::to_string(rc) + ", \"error\": " + (error ? js(error) : std::string("null"));
    o += ", \"attributes\": [";
    bool first = true;
    for (auto a : t.attributes)
    {
        o += first ? "" : ", ";
        first = false;
        o += "[" + js(a->name) + ", ";
        if (a->vector)
        {
            o += "{";
            bool f2 = true;
            for (auto& kv : a->values) { o += (f2 ? "" : ", ") + js(kv.first) + ": " + js(kv.second); f2 = false; }
            o += "}";
        }
        else o += js(a->value);
        o += "]";
    }
    o += "]}\n";
    fputs(o.c_str(), out);
    fclose(out);
    free(error);
    return 0;
}

// Minimal stand-in for OpenNebula's Template.h, Attribute.h and NebulaUtil.h,
// enough to link OpenNebula's own generated template lexer and parser
// (src/parsers/template_parser.cc, template_syntax.cc) into a test harness.
// Written for nebula.storage's tests; it records what the parser hands over.
#ifndef NS_TEMPLATE_STUB_H
#define NS_TEMPLATE_STUB_H
#include <map>
#include <string>
#include <vector>

class Attribute
{
public:
    explicit Attribute(const std::string& n) : name(n) {}
    virtual ~Attribute() {}
    std::string name;
    bool vector = false;
    std::string value;                          // single attribute
    std::map<std::string, std::string> values;  // vector attribute, as the parser built it
};

class SingleAttribute : public Attribute
{
public:
    SingleAttribute(const std::string& n, const std::string& v) : Attribute(n) { value = v; }
};

class VectorAttribute : public Attribute
{
public:
    explicit VectorAttribute(const std::string& n) : Attribute(n) { vector = true; }
    VectorAttribute(const std::string& n, const std::map<std::string, std::string>& m) : Attribute(n)
    {
        vector = true;
        values = m;
    }
};

class Template
{
public:
    ~Template() { for (auto a : attributes) delete a; }
    void set(Attribute* a) { attributes.push_back(a); }
    std::vector<Attribute*> attributes;  // in the order the parser set them
};
#endif

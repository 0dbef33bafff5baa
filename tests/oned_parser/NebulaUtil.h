// Stand-in for OpenNebula's NebulaUtil.h: the template parser only uses one_util::toupper.
#ifndef NS_NEBULA_UTIL_STUB_H
#define NS_NEBULA_UTIL_STUB_H
#include <algorithm>
#include <cctype>
#include <string>
namespace one_util
{
inline std::string& toupper(std::string& s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
    return s;
}
}
#endif

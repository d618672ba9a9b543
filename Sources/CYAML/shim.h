// libyaml for Swift: the policy and configuration file parser.
#include <yaml.h>

// placeholder: the profile/predict layer replaces this file
#include <gtest/gtest.h>

/* version: the one version string every opskit program reports. */
#ifndef OPSKIT_VERSION_H
#define OPSKIT_VERSION_H
#define OPSKIT_VERSION "0.1.0"
#endif

// Compiles every header generated from the XML with the project's warnings, so that an XML change that
// produces code which does not build fails here, in the build of dbus/, not later in the daemon or client.
#include "vmstor-job-adaptor.h"
#include "vmstor-job-proxy.h"
#include "vmstor-manager-adaptor.h"
#include "vmstor-manager-proxy.h"
#include "vmstor-pool-adaptor.h"
#include "vmstor-pool-proxy.h"
#include "vmstor-snapshot-adaptor.h"
#include "vmstor-snapshot-proxy.h"
#include "vmstor-volume-adaptor.h"
#include "vmstor-volume-proxy.h"

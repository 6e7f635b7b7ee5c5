/* embedded.h - files compiled into the binary (the admin UI's web/admin/),
 * generated at build time by cmake/embed.cmake into the build tree's
 * generated/admin_web.c. */
#ifndef HERALD_TRANSPORT_EMBEDDED_H
#define HERALD_TRANSPORT_EMBEDDED_H

#include <stddef.h>

typedef struct hr_embedded_file {
    const char *name;              /* relative to web/admin/, e.g. "admin.js" */
    const unsigned char *data;
    size_t len;
} hr_embedded_file;

/* Ends with a row whose name is NULL. */
extern const hr_embedded_file hr_embedded_files[];

#endif

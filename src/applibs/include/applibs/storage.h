/* Aspis applibs: the app's storage (Azure Sphere's applibs/storage.h): its one mutable file,
 * kept across restarts and updates and limited to the manifest's MutableStorage SizeKB, and the
 * read-only files of its image package. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* A read-write descriptor of the mutable file, or -1 with errno: EPERM when the manifest grants
 * no MutableStorage. Writes past SizeKB fail with EFBIG. */
int Storage_OpenMutableFile(void);
/* Empties the mutable file. 0, or -1 with errno: EPERM as above. */
int Storage_DeleteMutableFile(void);
/* A read-only descriptor of a file in the image package, or -1 with errno: EINVAL for an absolute
 * path or one that leaves the package, EFAULT for NULL, and open's errors. */
int Storage_OpenFileInImagePackage(const char* relativePath);
/* The file's absolute path (the caller frees it), or NULL with errno as above. */
char* Storage_GetAbsolutePathInImagePackage(const char* relativePath);

#ifdef __cplusplus
}
#endif

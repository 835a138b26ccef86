/*
 * status.c: errors as values. Names for dsd_status and OpenCL error codes,
 * recording an error with its source location, and the one-line format the
 * tools print. No I/O happens here.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

const char *dsd_status_name(dsd_status status)
{
    switch (status) {
    case DSD_OK: return "DSD_OK";
    case DSD_ERR_OPENCL: return "DSD_ERR_OPENCL";
    case DSD_ERR_NO_DEVICE: return "DSD_ERR_NO_DEVICE";
    case DSD_ERR_INVALID_ARGUMENT: return "DSD_ERR_INVALID_ARGUMENT";
    case DSD_ERR_SHAPE: return "DSD_ERR_SHAPE";
    case DSD_ERR_OUT_OF_MEMORY: return "DSD_ERR_OUT_OF_MEMORY";
    case DSD_ERR_BUILD: return "DSD_ERR_BUILD";
    case DSD_ERR_IO: return "DSD_ERR_IO";
    case DSD_ERR_FORMAT: return "DSD_ERR_FORMAT";
    case DSD_ERR_CLBLAST: return "DSD_ERR_CLBLAST";
    case DSD_ERR_CLFFT: return "DSD_ERR_CLFFT";
    case DSD_ERR_NAN: return "DSD_ERR_NAN";
    case DSD_ERR_CONFIG: return "DSD_ERR_CONFIG";
    }
    return "DSD_ERR_UNKNOWN";
}

const char *dsd_cl_error_name(int code)
{
#define NAME(c) case c: return #c
    switch (code) {
    NAME(CL_SUCCESS);
    NAME(CL_DEVICE_NOT_FOUND);
    NAME(CL_DEVICE_NOT_AVAILABLE);
    NAME(CL_COMPILER_NOT_AVAILABLE);
    NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE);
    NAME(CL_OUT_OF_RESOURCES);
    NAME(CL_OUT_OF_HOST_MEMORY);
    NAME(CL_PROFILING_INFO_NOT_AVAILABLE);
    NAME(CL_MEM_COPY_OVERLAP);
    NAME(CL_IMAGE_FORMAT_MISMATCH);
    NAME(CL_IMAGE_FORMAT_NOT_SUPPORTED);
    NAME(CL_BUILD_PROGRAM_FAILURE);
    NAME(CL_MAP_FAILURE);
    NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET);
    NAME(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
    NAME(CL_COMPILE_PROGRAM_FAILURE);
    NAME(CL_LINKER_NOT_AVAILABLE);
    NAME(CL_LINK_PROGRAM_FAILURE);
    NAME(CL_DEVICE_PARTITION_FAILED);
    NAME(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
    NAME(CL_INVALID_VALUE);
    NAME(CL_INVALID_DEVICE_TYPE);
    NAME(CL_INVALID_PLATFORM);
    NAME(CL_INVALID_DEVICE);
    NAME(CL_INVALID_CONTEXT);
    NAME(CL_INVALID_QUEUE_PROPERTIES);
    NAME(CL_INVALID_COMMAND_QUEUE);
    NAME(CL_INVALID_HOST_PTR);
    NAME(CL_INVALID_MEM_OBJECT);
    NAME(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
    NAME(CL_INVALID_IMAGE_SIZE);
    NAME(CL_INVALID_SAMPLER);
    NAME(CL_INVALID_BINARY);
    NAME(CL_INVALID_BUILD_OPTIONS);
    NAME(CL_INVALID_PROGRAM);
    NAME(CL_INVALID_PROGRAM_EXECUTABLE);
    NAME(CL_INVALID_KERNEL_NAME);
    NAME(CL_INVALID_KERNEL_DEFINITION);
    NAME(CL_INVALID_KERNEL);
    NAME(CL_INVALID_ARG_INDEX);
    NAME(CL_INVALID_ARG_VALUE);
    NAME(CL_INVALID_ARG_SIZE);
    NAME(CL_INVALID_KERNEL_ARGS);
    NAME(CL_INVALID_WORK_DIMENSION);
    NAME(CL_INVALID_WORK_GROUP_SIZE);
    NAME(CL_INVALID_WORK_ITEM_SIZE);
    NAME(CL_INVALID_GLOBAL_OFFSET);
    NAME(CL_INVALID_EVENT_WAIT_LIST);
    NAME(CL_INVALID_EVENT);
    NAME(CL_INVALID_OPERATION);
    NAME(CL_INVALID_GL_OBJECT);
    NAME(CL_INVALID_BUFFER_SIZE);
    NAME(CL_INVALID_MIP_LEVEL);
    NAME(CL_INVALID_GLOBAL_WORK_SIZE);
    NAME(CL_INVALID_PROPERTY);
    NAME(CL_INVALID_IMAGE_DESCRIPTOR);
    NAME(CL_INVALID_COMPILER_OPTIONS);
    NAME(CL_INVALID_LINKER_OPTIONS);
    NAME(CL_INVALID_DEVICE_PARTITION_COUNT);
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
#undef NAME
    return "CL_UNKNOWN_ERROR";
}

dsd_status dsd_status_from_cl(cl_int code)
{
    switch (code) {
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
    case CL_OUT_OF_HOST_MEMORY:
    case CL_OUT_OF_RESOURCES:
    case CL_INVALID_BUFFER_SIZE:
        return DSD_ERR_OUT_OF_MEMORY;
    case CL_BUILD_PROGRAM_FAILURE:
        return DSD_ERR_BUILD;
    case CL_DEVICE_NOT_FOUND:
    case -1001:
        return DSD_ERR_NO_DEVICE;
    default:
        return DSD_ERR_OPENCL;
    }
}

const char *dsd_call_name_(const char *expr)
{
    static _Thread_local char name[64];
    size_t i = 0;
    while (expr[i] && expr[i] != '(' && i + 1 < sizeof name) {
        name[i] = expr[i];
        i++;
    }
    name[i] = '\0';
    return name;
}

/* "/build/tree/src/ops/conv2d.c" -> "src/ops/conv2d.c": out-of-tree builds
 * pass absolute paths in __FILE__, users want the project's own. */
static const char *project_relative(const char *file)
{
    if (!file)
        return "";
    const char *best = NULL;
    for (const char *p = strstr(file, "src/"); p; p = strstr(p + 1, "src/"))
        if (p == file || p[-1] == '/')
            best = p;
    return best ? best : file;
}

void dsd_error_clear(dsd_error *err)
{
    if (!err)
        return;
    err->status = DSD_OK;
    err->cl_code = 0;
    err->file = "";
    err->line = 0;
    err->call[0] = '\0';
    err->message[0] = '\0';
}

dsd_status dsd_error_vset(dsd_error *err, dsd_status status, int code, const char *call,
                          const char *file, int line, const char *fmt, va_list ap)
{
    if (!err)
        return status;
    err->status = status;
    err->cl_code = code;
    err->file = project_relative(file);
    err->line = line;
    snprintf(err->call, sizeof err->call, "%s", call ? call : "");
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return status;
}

dsd_status dsd_error_set(dsd_error *err, dsd_status status, int code, const char *call,
                         const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dsd_status st = dsd_error_vset(err, status, code, call, file, line, fmt, ap);
    va_end(ap);
    return st;
}

/* The human part first (the message, which names the user's file when there
 * is one), then what the library call said, then where we noticed:
 * "x.png: cannot open: No such file or directory [src/io/image.c:113]",
 * "device out of memory: ... (clCreateBuffer: CL_MEM_OBJECT_ALLOCATION_FAILURE (-4))
 * [src/buffer_pool.c:42]" (one line). A location without a line number (a
 * tool's own error) is "[file]". */
const char *dsd_error_format(const dsd_error *err, char *buf, size_t size)
{
    if (!buf || size == 0)
        return "";
    if (!err || err->status == DSD_OK) {
        snprintf(buf, size, "no error");
        return buf;
    }
    char code[96] = "";
    if (err->cl_code != 0 && err->call[0] &&
        (err->status == DSD_ERR_OPENCL || err->status == DSD_ERR_BUILD ||
         err->status == DSD_ERR_OUT_OF_MEMORY || err->status == DSD_ERR_NO_DEVICE))
        snprintf(code, sizeof code, "%s (%d)", dsd_cl_error_name(err->cl_code), err->cl_code);
    else if (err->cl_code != 0)
        snprintf(code, sizeof code, "status %d", err->cl_code);
    char detail[176] = ""; /* "call: CODE (n)", "call", "status n" or "" */
    snprintf(detail, sizeof detail, "%s%s%s", err->call, err->call[0] && code[0] ? ": " : "",
             code);
    char where[160] = "";
    if (err->file && err->file[0] && err->line > 0)
        snprintf(where, sizeof where, "[%s:%d]", err->file, err->line);
    else if (err->file && err->file[0])
        snprintf(where, sizeof where, "[%s]", err->file);
    const char *msg = err->message;
    if (!msg[0]) /* nothing human to say: the call goes first, unbracketed */
        snprintf(buf, size, "%s%s%s", detail, detail[0] && where[0] ? " " : "", where);
    else
        snprintf(buf, size, "%s%s%s%s%s%s", msg, detail[0] ? " (" : "", detail,
                 detail[0] ? ")" : "", where[0] ? " " : "", where);
    return buf;
}

uint64_t dsd_hash64(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

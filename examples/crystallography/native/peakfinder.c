/*
 * peakfinder: xtal.find_peaks as a compiled OpenWhisk native action.
 *
 * The same peakfinder8-style search as examples/crystallography/xtal/peaks.py, step for
 * step: per-ring (integer radius) background by iterative sigma clipping, candidates above
 * max(threshold, mean + min_snr * sigma) of their ring inside the resolution window,
 * 8-connected candidates as peaks, a pixel-count window, a local-background SNR test and a
 * weighted centroid. Bad pixels (the geometry's flags, non-finite values, bad regions, a
 * mask dataset) never count.
 *
 * Protocol (OpenWhisk's dockerskeleton, `wsk action create --native`): the input JSON is
 * argv[1] (or stdin when there is no argument); the result is the last line of stdout.
 * Input: {"run_file", "geom_file", "start", "stop"} plus any PeakSearch setting
 * (threshold, min_snr, min_pix_count, max_pix_count, local_bg_radius, min_res, max_res,
 * clip_iterations). Output: {"settings": {...}, "frames": [{"event", "peaks": [[fs, ss,
 * 1/d in nm^-1, intensity], ...]}, ...]} as find_peaks returns it, or {"error": "..."}.
 * Frames are read by reference from the HDF5 run (libhdf5, linked statically).
 */
#include <ctype.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT 4096
#define MAX_REGIONS 64

/* ---- failure: one JSON error line, then exit ------------------------------------------ */

static void put_json_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void fail(const char *format, ...)
{
    char message[2 * MAX_TEXT];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    fflush(stdout);
    fputs("{\"error\": ", stdout);
    put_json_string(stdout, message);
    fputs("}\n", stdout);
    exit(1);
}

static void *checked_malloc(size_t size)
{
    void *memory = calloc(size ? size : 1, 1);
    if (!memory)
        fail("out of memory (%zu bytes)", size);
    return memory;
}

/* ---- the input: a flat JSON object of strings and numbers ----------------------------- */

typedef struct {
    char run_file[MAX_TEXT], geom_file[MAX_TEXT];
    long start, stop;
    int has_run, has_geom, has_start, has_stop;
} Input;

typedef struct {
    double threshold, min_snr, min_res, max_res;
    long min_pix_count, max_pix_count, local_bg_radius, clip_iterations;
} Search;

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static void put_utf8(char **out, const char *end, unsigned code)
{
    unsigned char bytes[3];
    int n;
    if (code < 0x80) {
        bytes[0] = (unsigned char)code;
        n = 1;
    } else if (code < 0x800) {
        bytes[0] = (unsigned char)(0xC0 | (code >> 6));
        bytes[1] = (unsigned char)(0x80 | (code & 0x3F));
        n = 2;
    } else {
        bytes[0] = (unsigned char)(0xE0 | (code >> 12));
        bytes[1] = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (code & 0x3F));
        n = 3;
    }
    if (*out + n >= end)
        fail("a string in the input is longer than %d bytes", MAX_TEXT - 1);
    memcpy(*out, bytes, (size_t)n);
    *out += n;
}

/* A JSON string at p (after its opening quote) into out; returns the text after it. */
static const char *parse_string(const char *p, char *out)
{
    char *w = out, *end = out + MAX_TEXT;
    while (*p != '"') {
        if (!*p)
            fail("the input is not valid JSON: a string is not closed");
        if (*p != '\\') {
            if (w + 1 >= end)
                fail("a string in the input is longer than %d bytes", MAX_TEXT - 1);
            *w++ = *p++;
            continue;
        }
        p++;
        const char *simple = strchr("\"\\/bfnrt", *p);
        if (*p && simple) {
            put_utf8(&w, end, (unsigned char)"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]);
            p++;
        } else if (*p == 'u') {
            unsigned code;
            if (sscanf(p + 1, "%4x", &code) != 1 || !isxdigit((unsigned char)p[4]))
                fail("the input is not valid JSON: bad \\u escape");
            put_utf8(&w, end, code);
            p += 5;
        } else {
            fail("the input is not valid JSON: bad escape \\%c", *p ? *p : '0');
        }
    }
    *w = '\0';
    return p + 1;
}

static int is_integer(double value) { return value == floor(value) && fabs(value) < 1e15; }

static long integer_setting(const char *key, double value)
{
    if (!is_integer(value))
        fail("'%s' must be an integer, not %g", key, value);
    return (long)value;
}

static void set_number(Input *input, Search *search, const char *key, double value)
{
    if (!strcmp(key, "start"))
        input->start = integer_setting(key, value), input->has_start = 1;
    else if (!strcmp(key, "stop"))
        input->stop = integer_setting(key, value), input->has_stop = 1;
    else if (!strcmp(key, "threshold"))
        search->threshold = value;
    else if (!strcmp(key, "min_snr"))
        search->min_snr = value;
    else if (!strcmp(key, "min_res"))
        search->min_res = value;
    else if (!strcmp(key, "max_res"))
        search->max_res = value;
    else if (!strcmp(key, "min_pix_count"))
        search->min_pix_count = integer_setting(key, value);
    else if (!strcmp(key, "max_pix_count"))
        search->max_pix_count = integer_setting(key, value);
    else if (!strcmp(key, "local_bg_radius"))
        search->local_bg_radius = integer_setting(key, value);
    else if (!strcmp(key, "clip_iterations"))
        search->clip_iterations = integer_setting(key, value);
    else
        fail("unknown input '%s': give run_file, geom_file, start, stop and PeakSearch "
             "settings (threshold, min_snr, min_pix_count, max_pix_count, local_bg_radius, "
             "min_res, max_res, clip_iterations)", key);
}

static void parse_input(const char *text, Input *input, Search *search)
{
    char key[MAX_TEXT], value[MAX_TEXT];
    const char *p = skip_space(text);
    if (*p != '{')
        fail("the input must be a JSON object like {\"run_file\": \"/data/run.h5\", "
             "\"geom_file\": \"/data/run.geom\", \"start\": 0, \"stop\": 25}");
    p = skip_space(p + 1);
    while (*p != '}') {
        if (*p != '"')
            fail("the input is not valid JSON: expected a key at '%.20s'", p);
        p = skip_space(parse_string(p + 1, key));
        if (*p != ':')
            fail("the input is not valid JSON: expected ':' after \"%s\"", key);
        p = skip_space(p + 1);
        if (*p == '"') {
            p = parse_string(p + 1, value);
            if (!strcmp(key, "run_file"))
                strcpy(input->run_file, value), input->has_run = 1;
            else if (!strcmp(key, "geom_file"))
                strcpy(input->geom_file, value), input->has_geom = 1;
            else
                fail("'%s' must be a number, not the string \"%s\"", key, value);
        } else {
            char *end;
            errno = 0;
            double number = strtod(p, &end);
            if (end == p || errno)
                fail("'%s' must be %s", key,
                     strstr(key, "file") ? "a path (a string)" : "a number");
            set_number(input, search, key, number);
            p = end;
        }
        p = skip_space(p);
        if (*p == ',')
            p = skip_space(p + 1);
        else if (*p != '}')
            fail("the input is not valid JSON: expected ',' or '}' at '%.20s'", p);
    }
    if (*skip_space(p + 1))
        fail("the input is not valid JSON: text after the object");
    if (!input->has_run || !input->has_geom || !input->has_start || !input->has_stop)
        fail("the input needs run_file, geom_file, start and stop, e.g. {\"run_file\": "
             "\"/data/run.h5\", \"geom_file\": \"/data/run.geom\", \"start\": 0, \"stop\": 25}");
    if (search->min_pix_count < 1 || search->max_pix_count < search->min_pix_count)
        fail("pixel-count window %ld..%ld is empty: need 1 <= min_pix_count <= max_pix_count",
             search->min_pix_count, search->max_pix_count);
    if (search->min_snr <= 0 || search->local_bg_radius < 1)
        fail("min_snr must be > 0 and local_bg_radius >= 1");
}

/* ---- the geometry: the single-panel subset xtal.geometry.read_geom reads -------------- */

typedef struct {
    int xy; /* 0: panel pixels (fs, ss), 1: pixels from the beam (x, y) */
    double low_1, high_1, low_2, high_2;
} Region;

typedef struct {
    double wavelength, clen, res, corner_x, corner_y;
    long min_fs, max_fs, min_ss, max_ss;
    double fs_x, fs_y, ss_x, ss_y;
    char data[MAX_TEXT], mask[MAX_TEXT];
    int has_lessthan, has_morethan;
    double flag_lessthan, flag_morethan;
    long long mask_good, mask_bad;
    Region regions[MAX_REGIONS];
    int n_regions;
} Geometry;

static double geom_number(const char *path, const char *key, const char *value)
{
    char *end;
    double number = strtod(value, &end);
    if (end == value)
        fail("%s: '%s = %s' is not a number", path, key, value);
    return number;
}

static void geom_direction(const char *path, const char *key, const char *value, double *x,
                           double *y)
{
    const char *p = value;
    *x = *y = 0;
    while (*(p = skip_space(p))) {
        char *end;
        double number = strtod(p, &end);
        if (end == p)
            number = (*p == '-') ? -1 : 1, end = (char *)p + (*p == '-' || *p == '+');
        end = (char *)skip_space(end);
        if (*end == 'x')
            *x = number;
        else if (*end == 'y')
            *y = number;
        else
            fail("%s: '%s = %s' is not a direction in the detector plane like '+1.0x'", path,
                 key, value);
        p = end + 1;
    }
}

static Region *region_named(Geometry *g, char names[][64], const char *name)
{
    for (int i = 0; i < g->n_regions; i++)
        if (!strcmp(names[i], name))
            return &g->regions[i];
    if (g->n_regions == MAX_REGIONS)
        fail("more than %d bad regions", MAX_REGIONS);
    snprintf(names[g->n_regions], 64, "%s", name);
    Region *r = &g->regions[g->n_regions++];
    r->xy = -1;
    r->low_1 = r->low_2 = NAN;
    r->high_1 = r->high_2 = NAN;
    return r;
}

static void read_geometry(const char *path, Geometry *g)
{
    FILE *file = fopen(path, "r");
    if (!file)
        fail("cannot read the geometry file %s: %s", path, strerror(errno));
    char line[MAX_TEXT], panel[64] = "", region_names[MAX_REGIONS][64];
    double photon_energy = NAN;
    int seen = 0; /* bits: clen res corner_x corner_y min_fs max_fs min_ss max_ss */
    memset(g, 0, sizeof *g);
    g->wavelength = NAN;
    g->fs_x = 1, g->ss_y = 1;
    strcpy(g->data, "/entry_1/data_1/data");
    while (fgets(line, sizeof line, file)) {
        char *comment = strchr(line, ';');
        if (comment)
            *comment = '\0';
        char *key = (char *)skip_space(line), *value = strchr(key, '=');
        if (!*key)
            continue;
        if (!value)
            fail("%s: '%s' is not 'key = value'", path, key);
        *value++ = '\0';
        value = (char *)skip_space(value);
        for (char *end = key + strlen(key); end > key && isspace((unsigned char)end[-1]);)
            *--end = '\0';
        for (char *end = value + strlen(value); end > value && isspace((unsigned char)end[-1]);)
            *--end = '\0';
        char *slash = strchr(key, '/'), *name = key;
        if (slash && key[0] != '/') {
            *slash = '\0';
            name = slash + 1;
            if (!strncmp(key, "bad", 3)) {
                Region *r = region_named(g, region_names, key);
                int xy = name[4] == 'x' || name[4] == 'y';
                double number = geom_number(path, name, value);
                const char *axis = name + 4;
                if ((strncmp(name, "min_", 4) && strncmp(name, "max_", 4)) ||
                    (strcmp(axis, "fs") && strcmp(axis, "ss") && strcmp(axis, "x") &&
                     strcmp(axis, "y")))
                    fail("%s: unknown bad region key '%s/%s'", path, key, name);
                r->xy = xy;
                int first = name[4] == 'f' || name[4] == 'x', low = name[1] == 'i';
                *(first ? (low ? &r->low_1 : &r->high_1) : (low ? &r->low_2 : &r->high_2)) =
                    number;
                continue;
            }
            if (!strncmp(key, "rigid_group", 11))
                continue;
            if (panel[0] && strcmp(panel, key))
                fail("%s: this peak finder needs exactly one panel, found %s and %s", path,
                     panel, key);
            snprintf(panel, sizeof panel, "%s", key);
        }
        const char *numbers[] = {"clen",   "res",    "corner_x", "corner_y",
                                 "min_fs", "max_fs", "min_ss",   "max_ss"};
        int known = 0;
        for (int i = 0; i < 8; i++) {
            if (strcmp(name, numbers[i]))
                continue;
            double number = geom_number(path, name, value);
            double *doubles[] = {&g->clen, &g->res, &g->corner_x, &g->corner_y};
            long *longs[] = {&g->min_fs, &g->max_fs, &g->min_ss, &g->max_ss};
            if (i < 4)
                *doubles[i] = number;
            else
                *longs[i - 4] = (long)number;
            seen |= 1 << i;
            known = 1;
        }
        if (known)
            continue;
        if (!strcmp(name, "wavelength"))
            g->wavelength = geom_number(path, name, value) * 1e10;
        else if (!strcmp(name, "photon_energy"))
            photon_energy = geom_number(path, name, value);
        else if (!strcmp(name, "fs"))
            geom_direction(path, name, value, &g->fs_x, &g->fs_y);
        else if (!strcmp(name, "ss"))
            geom_direction(path, name, value, &g->ss_x, &g->ss_y);
        else if (!strcmp(name, "data"))
            snprintf(g->data, sizeof g->data, "%s", value);
        else if (!strcmp(name, "mask"))
            snprintf(g->mask, sizeof g->mask, "%s", value);
        else if (!strcmp(name, "mask_good"))
            g->mask_good = strtoll(value, NULL, 0);
        else if (!strcmp(name, "mask_bad"))
            g->mask_bad = strtoll(value, NULL, 0);
        else if (!strcmp(name, "flag_lessthan"))
            g->flag_lessthan = geom_number(path, name, value), g->has_lessthan = 1;
        else if (!strcmp(name, "flag_morethan"))
            g->flag_morethan = geom_number(path, name, value), g->has_morethan = 1;
        else if (!strcmp(name, "mask_file"))
            fail("%s: 'mask_file' (a mask in another file) is not supported", path);
        else if (!strcmp(name, "dim0") && strcmp(value, "%"))
            fail("%s: 'dim0 = %s': frames must be 'dim0 = %%'", path, value);
    }
    fclose(file);
    if (!panel[0])
        fail("%s: this peak finder needs exactly one panel, found none", path);
    if (isnan(g->wavelength)) {
        if (isnan(photon_energy))
            fail("%s: set 'photon_energy = <eV>' or 'wavelength = <m>'", path);
        g->wavelength = 12398.4198 / photon_energy;
    }
    if (seen != 0xFF)
        fail("%s: missing one of clen, res, corner_x, corner_y, min_fs, max_fs, min_ss, "
             "max_ss", path);
    if (g->wavelength <= 0 || g->clen <= 0 || g->res <= 0)
        fail("%s: wavelength, clen and res must be positive", path);
    if (fabs(g->fs_x * g->ss_y - g->fs_y * g->ss_x) < 1e-6)
        fail("%s: fs and ss must not be parallel", path);
    if (g->max_fs < g->min_fs || g->max_ss < g->min_ss)
        fail("%s: max_fs/max_ss must not be below min_fs/min_ss", path);
    for (int i = 0; i < g->n_regions; i++) {
        Region *r = &g->regions[i];
        if (isnan(r->low_1) || isnan(r->high_1) || isnan(r->low_2) || isnan(r->high_2))
            fail("%s: bad region '%s' needs min_fs, max_fs, min_ss, max_ss or min_x, max_x, "
                 "min_y, max_y", path, region_names[i]);
    }
}

/* ---- frames from HDF5 ----------------------------------------------------------------- */

typedef struct {
    hid_t file, data, mask;
    hsize_t frames, ss, fs;
    int mask_per_frame;
} Run;

static void open_run(const char *path, const Geometry *g, Run *run)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our own messages, not HDF5's error stack */
    run->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (run->file < 0)
        fail("cannot open %s as HDF5 (missing, unreadable or not HDF5)", path);
    run->data = H5Dopen2(run->file, g->data, H5P_DEFAULT);
    if (run->data < 0)
        fail("%s has no dataset %s (the geometry's 'data' key)", path, g->data);
    hsize_t dims[3];
    hid_t space = H5Dget_space(run->data);
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 3)
        H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    run->ss = (hsize_t)(g->max_ss - g->min_ss + 1);
    run->fs = (hsize_t)(g->max_fs - g->min_fs + 1);
    if (rank != 3 || dims[1] != run->ss || dims[2] != run->fs)
        fail("%s:%s must have shape (frames, %llu, %llu) for the geometry's panel", path,
             g->data, (unsigned long long)run->ss, (unsigned long long)run->fs);
    run->frames = dims[0];
    run->mask = -1;
    if (!g->mask[0])
        return;
    run->mask = H5Dopen2(run->file, g->mask, H5P_DEFAULT);
    if (run->mask < 0)
        fail("%s has no mask dataset %s (the geometry's 'mask')", path, g->mask);
    space = H5Dget_space(run->mask);
    rank = H5Sget_simple_extent_ndims(space);
    if (rank == 2 || rank == 3)
        H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    run->mask_per_frame = rank == 3;
    hsize_t *panel = dims + (rank == 3);
    if ((rank != 2 && rank != 3) || panel[0] != run->ss || panel[1] != run->fs)
        fail("%s:%s must have shape (%llu, %llu) or (frames, %llu, %llu)", path, g->mask,
             (unsigned long long)run->ss, (unsigned long long)run->fs,
             (unsigned long long)run->ss, (unsigned long long)run->fs);
}

/* Read frame n (or the mask: its frame n, or its only plane) as the given memory type. */
static void read_plane(hid_t dataset, int rank, hsize_t n, const Run *run, hid_t type,
                       void *out)
{
    hsize_t start[3] = {n, 0, 0}, count[3] = {1, run->ss, run->fs};
    hid_t file_space = H5Dget_space(dataset), memory = H5Screate_simple(2, count + 1, NULL);
    if (rank == 3)
        H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(dataset, type, memory, file_space, H5P_DEFAULT, out) < 0)
        fail("cannot read frame %llu of the run", (unsigned long long)n);
    H5Sclose(memory);
    H5Sclose(file_space);
}

/* ---- the search ----------------------------------------------------------------------- */

typedef struct {
    long ss, fs, n;
    float *frame;
    unsigned char *bad, *candidate;
    double *radius;
    long *ring, n_rings;
    long long *mask_values;
    int *label;
    long *order; /* pixels of each peak, peak after peak, in flood-fill order */
    double *mean, *sigma, *count, *total, *squares;
} Work;

static void lab_xy(const Geometry *g, double fs, double ss, double *x, double *y)
{
    fs -= (double)g->min_fs, ss -= (double)g->min_ss;
    *x = g->corner_x + fs * g->fs_x + ss * g->ss_x;
    *y = g->corner_y + fs * g->fs_y + ss * g->ss_y;
}

static void prepare(const Geometry *g, const Run *run, Work *w)
{
    w->ss = (long)run->ss, w->fs = (long)run->fs, w->n = w->ss * w->fs;
    w->frame = checked_malloc(sizeof(float) * (size_t)w->n);
    w->bad = checked_malloc((size_t)w->n);
    w->candidate = checked_malloc((size_t)w->n);
    w->radius = checked_malloc(sizeof(double) * (size_t)w->n);
    w->ring = checked_malloc(sizeof(long) * (size_t)w->n);
    w->label = checked_malloc(sizeof(int) * (size_t)w->n);
    w->order = checked_malloc(sizeof(long) * (size_t)w->n);
    if (run->mask >= 0)
        w->mask_values = checked_malloc(sizeof(long long) * (size_t)w->n);
    w->n_rings = 0;
    for (long ss = 0; ss < w->ss; ss++)
        for (long fs = 0; fs < w->fs; fs++) {
            double x, y;
            lab_xy(g, (double)(fs + g->min_fs) + 0.5, (double)(ss + g->min_ss) + 0.5, &x, &y);
            long i = ss * w->fs + fs;
            w->radius[i] = hypot(x, y);
            w->ring[i] = (long)w->radius[i];
            if (w->ring[i] + 1 > w->n_rings)
                w->n_rings = w->ring[i] + 1;
        }
    w->mean = checked_malloc(sizeof(double) * (size_t)w->n_rings);
    w->sigma = checked_malloc(sizeof(double) * (size_t)w->n_rings);
    w->count = checked_malloc(sizeof(double) * (size_t)w->n_rings);
    w->total = checked_malloc(sizeof(double) * (size_t)w->n_rings);
    w->squares = checked_malloc(sizeof(double) * (size_t)w->n_rings);
}

static void mark_bad(const Geometry *g, Work *w)
{
    for (long ss = 0; ss < w->ss; ss++)
        for (long fs = 0; fs < w->fs; fs++) {
            long i = ss * w->fs + fs;
            float v = w->frame[i];
            int bad = !isfinite(v) || (g->has_lessthan && v < g->flag_lessthan) ||
                      (g->has_morethan && v > g->flag_morethan);
            double pfs = (double)(fs + g->min_fs), pss = (double)(ss + g->min_ss), x, y;
            lab_xy(g, pfs + 0.5, pss + 0.5, &x, &y);
            for (int k = 0; k < g->n_regions && !bad; k++) {
                const Region *r = &g->regions[k];
                double first = r->xy ? x : pfs, second = r->xy ? y : pss;
                bad = first >= r->low_1 && first <= r->high_1 && second >= r->low_2 &&
                      second <= r->high_2;
            }
            if (w->mask_values) {
                long long m = w->mask_values[i];
                bad |= !((m & g->mask_good) == g->mask_good && (m & g->mask_bad) == 0);
            }
            w->bad[i] = (unsigned char)bad;
        }
}

/* Mean and sigma of each ring, bright pixels clipped away (radial_statistics). */
static void radial_statistics(Work *w, const Search *s)
{
    unsigned char *use = w->candidate; /* borrowed as scratch until the candidates are made */
    for (long i = 0; i < w->n; i++)
        use[i] = !w->bad[i];
    for (long it = 0; it < s->clip_iterations; it++) {
        for (long r = 0; r < w->n_rings; r++)
            w->count[r] = w->total[r] = w->squares[r] = 0;
        for (long i = 0; i < w->n; i++)
            if (use[i]) {
                float v = w->frame[i], square = v * v; /* numpy squares in float32 */
                w->count[w->ring[i]] += 1;
                w->total[w->ring[i]] += v;
                w->squares[w->ring[i]] += square;
            }
        for (long r = 0; r < w->n_rings; r++) {
            double c = w->count[r];
            w->mean[r] = c > 0 ? w->total[r] / c : 0.0;
            double variance = (c > 0 ? w->squares[r] / c : 0.0) - w->mean[r] * w->mean[r];
            w->sigma[r] = sqrt(variance > 0 ? variance : 0.0);
        }
        for (long i = 0; i < w->n; i++)
            use[i] = !w->bad[i] &&
                     w->frame[i] < w->mean[w->ring[i]] + s->min_snr * w->sigma[w->ring[i]];
    }
}

typedef struct {
    double fs, ss, intensity;
} Peak;

/* Peaks of the frame in w, in the order of their first pixel (as ndimage.label numbers them). */
static long search_frame(Work *w, const Search *s, Peak **peaks, long *capacity)
{
    radial_statistics(w, s);
    for (long i = 0; i < w->n; i++) {
        long r = w->ring[i];
        double level = w->mean[r] + s->min_snr * w->sigma[r];
        if (level < s->threshold)
            level = s->threshold;
        w->candidate[i] = !w->bad[i] && w->radius[i] >= s->min_res &&
                          w->radius[i] <= s->max_res && w->frame[i] > level;
        w->label[i] = 0;
    }
    long found = 0, filled = 0, rad = s->local_bg_radius;
    int next_label = 0;
    for (long seed = 0; seed < w->n; seed++) {
        if (!w->candidate[seed] || w->label[seed])
            continue;
        int label = ++next_label;
        long first = filled, min_ss = w->ss, max_ss = -1, min_fs = w->fs, max_fs = -1;
        w->order[filled++] = seed;
        w->label[seed] = label;
        for (long q = first; q < filled; q++) {
            long ss = w->order[q] / w->fs, fs = w->order[q] % w->fs;
            min_ss = ss < min_ss ? ss : min_ss, max_ss = ss > max_ss ? ss : max_ss;
            min_fs = fs < min_fs ? fs : min_fs, max_fs = fs > max_fs ? fs : max_fs;
            for (long ds = -1; ds <= 1; ds++)
                for (long df = -1; df <= 1; df++) {
                    long ns = ss + ds, nf = fs + df, j = ns * w->fs + nf;
                    if (ns < 0 || ns >= w->ss || nf < 0 || nf >= w->fs)
                        continue;
                    if (w->candidate[j] && !w->label[j]) {
                        w->label[j] = label;
                        w->order[filled++] = j;
                    }
                }
        }
        long n_pix = filled - first;
        if (n_pix < s->min_pix_count || n_pix > s->max_pix_count)
            continue;
        long ss0 = min_ss - rad > 0 ? min_ss - rad : 0;
        long ss1 = max_ss + 1 + rad < w->ss ? max_ss + 1 + rad : w->ss;
        long fs0 = min_fs - rad > 0 ? min_fs - rad : 0;
        long fs1 = max_fs + 1 + rad < w->fs ? max_fs + 1 + rad : w->fs;
        double sum = 0, deviations = 0;
        long n_background = 0;
        for (long ss = ss0; ss < ss1; ss++)
            for (long fs = fs0; fs < fs1; fs++) {
                long i = ss * w->fs + fs;
                if (!w->candidate[i] && !w->bad[i])
                    sum += w->frame[i], n_background++;
            }
        if (n_background < 4)
            continue;
        double local_mean = sum / (double)n_background;
        for (long ss = ss0; ss < ss1; ss++)
            for (long fs = fs0; fs < fs1; fs++) {
                long i = ss * w->fs + fs;
                if (!w->candidate[i] && !w->bad[i])
                    deviations += (w->frame[i] - local_mean) * (w->frame[i] - local_mean);
            }
        double local_sigma = sqrt(deviations / (double)n_background);
        float mean32 = (float)local_mean; /* numpy subtracts the mean in float32 */
        float brightest = -INFINITY;
        double intensity = 0, weight_sum = 0, fs_sum = 0, ss_sum = 0;
        for (long q = first; q < filled; q++) {
            long i = w->order[q];
            float value = w->frame[i] - mean32, weight = value > 0 ? value : 0;
            brightest = value > brightest ? value : brightest;
            intensity += value;
            weight_sum += weight;
            fs_sum += (double)(i % w->fs) * weight;
            ss_sum += (double)(i / w->fs) * weight;
        }
        if (brightest < s->min_snr * (local_sigma > 1e-6 ? local_sigma : 1e-6))
            continue;
        if (found == *capacity) {
            *capacity *= 2;
            *peaks = realloc(*peaks, sizeof(Peak) * (size_t)*capacity);
            if (!*peaks)
                fail("out of memory for %ld peaks", *capacity);
        }
        (*peaks)[found++] = (Peak){fs_sum / weight_sum + 0.5, ss_sum / weight_sum + 0.5,
                                   intensity};
    }
    return found;
}

/* 1/d in nm^-1 of a continuous panel position: |s1 - s0| * 10 (scattering_vectors). */
static double inverse_d(const Geometry *g, double fs, double ss)
{
    double x, y;
    lab_xy(g, fs, ss, &x, &y);
    double lx = x / g->res, ly = y / g->res, lz = g->clen;
    double norm = sqrt(lx * lx + ly * ly + lz * lz), k = 1.0 / g->wavelength;
    double qx = lx / norm * k, qy = ly / norm * k, qz = lz / norm * k - k;
    return sqrt(qx * qx + qy * qy + qz * qz) * 10;
}

/* ---- main ----------------------------------------------------------------------------- */

static char *read_stdin(void)
{
    size_t size = 0, capacity = 4096;
    char *text = checked_malloc(capacity);
    size_t got;
    while ((got = fread(text + size, 1, capacity - size - 1, stdin)) > 0) {
        size += got;
        if (size + 1 == capacity) {
            capacity *= 2;
            text = realloc(text, capacity);
            if (!text)
                fail("out of memory reading the input");
        }
    }
    text[size] = '\0';
    return text;
}

int main(int argc, char **argv)
{
    Input input = {0};
    Search search = {20.0, 5.0, 0.0, 1e9, 2, 200, 3, 5};
    parse_input(argc > 1 ? argv[1] : read_stdin(), &input, &search);
    Geometry geometry;
    read_geometry(input.geom_file, &geometry);
    Run run;
    open_run(input.run_file, &geometry, &run);
    if (!(0 <= input.start && input.start < input.stop && (hsize_t)input.stop <= run.frames))
        fail("frames %ld..%ld (start=%ld, stop=%ld) are not in %s: it has %llu frames, so "
             "0 <= start < stop <= %llu", input.start, input.stop - 1, input.start, input.stop,
             input.run_file, (unsigned long long)run.frames, (unsigned long long)run.frames);
    Work work = {0};
    prepare(&geometry, &run, &work);
    long capacity = 256;
    Peak *peaks = checked_malloc(sizeof(Peak) * (size_t)capacity);

    /* The result is one line, written only once every frame has been searched. */
    size_t result_size;
    char *result;
    FILE *out = open_memstream(&result, &result_size);
    fprintf(out, "{\"settings\": {\"threshold\": %.17g, \"min_snr\": %.17g, \"min_pix_count\": "
                 "%ld, \"max_pix_count\": %ld, \"local_bg_radius\": %ld, \"min_res\": %.17g, "
                 "\"max_res\": %.17g, \"clip_iterations\": %ld}, \"frames\": [",
            search.threshold, search.min_snr, search.min_pix_count, search.max_pix_count,
            search.local_bg_radius, search.min_res, search.max_res, search.clip_iterations);
    for (long event = input.start; event < input.stop; event++) {
        read_plane(run.data, 3, (hsize_t)event, &run, H5T_NATIVE_FLOAT, work.frame);
        if (run.mask >= 0)
            read_plane(run.mask, run.mask_per_frame ? 3 : 2, (hsize_t)event, &run,
                       H5T_NATIVE_LLONG, work.mask_values);
        mark_bad(&geometry, &work);
        long n = search_frame(&work, &search, &peaks, &capacity);
        fprintf(out, "%s{\"event\": %ld, \"peaks\": [", event > input.start ? ", " : "", event);
        for (long k = 0; k < n; k++) {
            /* Frame-array indices + 0.5, as xtal.peaks.peakfinder8 gives them. */
            double fs = peaks[k].fs, ss = peaks[k].ss;
            fprintf(out, "%s[%.3f, %.3f, %.5f, %.2f]", k ? ", " : "", fs, ss,
                    inverse_d(&geometry, fs, ss), peaks[k].intensity);
        }
        fputs("]}", out);
    }
    fputs("]}\n", out);
    fclose(out);
    if (run.mask >= 0)
        H5Dclose(run.mask);
    H5Dclose(run.data);
    H5Fclose(run.file);
    fwrite(result, 1, result_size, stdout);
    return 0;
}

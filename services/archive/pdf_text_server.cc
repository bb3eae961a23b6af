// pdf-text-server: pdftotext's text of one PDF after another, in one process.
//
// pdftotext spends some 4 of its 7 ms a small PDF starting up (loading and relocating
// poppler's 30 libraries), more than it spends reading the PDF. This server starts once per
// extraction worker and reads each PDF with the very poppler classes pdftotext 22.12 uses
// (PDFDoc, TextOutputDev with page breaks, UTF-8, 72 dpi, media box): the same text and the
// same error lines, byte for byte (tests/unit/archive/test_pdf_text_server.py compares them).
// Its client, limits and restarts are services/archive/pdf_text_server.py.
//
// Usage: pdf-text-server MAX_PAGES MAX_OUTPUT_BYTES SCRATCH_FD
// Request on standard input, one of two kinds: 'b', a 4-byte big-endian length, then that
// many bytes of PDF (read into memory whole); or 'f' alone: the PDF is the whole content of
// the file open at SCRATCH_FD (the client's unlinked scratch file, which it fills before
// and empties after), which poppler reads from the file as it needs it, so a PDF of tens of
// MB is not held in this process's memory.
// Reply on standard output: a status byte (0 read, 1 not opened, 2 needs a password, 3 no
// page: pdftotext's exit codes 0, 1, 1 and 99), then
// a 4-byte big-endian length and the text (UTF-8, pages ended by form feeds, at most
// MAX_OUTPUT_BYTES), then a 4-byte big-endian length and poppler's error lines as pdftotext
// prints them ("Syntax Error (280): No font in show"; past 64 KiB of them, only the last
// error and the last line). It exits at the end of its input.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <unistd.h>

#include "Error.h"
#include "goo/gfile.h"
#include "GlobalParams.h"
#include "PDFDoc.h"
#include "Stream.h"
#include "TextOutputDev.h"

namespace {

enum Status : unsigned char { READ = 0, NOT_OPENED = 1, NEEDS_PASSWORD = 2, NO_PAGE = 3 };

const size_t MAX_ERROR_BYTES = 64 * 1024;
const char *const CATEGORY_NAMES[] = {  // pdftotext's names of poppler's ErrorCategory
    "Syntax Warning", "Syntax Error", "Config Error", "Command Line Error", "I/O Error",
    "Permission Error", "Unimplemented Feature", "Internal Error"};

// The error lines of the PDF being read: the first MAX_ERROR_BYTES of them; past those, the
// last line that says "Error" (documents.pdf_text's reason for a damaged PDF) and the last
// line, added at the end (finish_errors), so the reason is pdftotext's however many there are.
std::string error_lines, last_error_line, last_line;

void keep_error(ErrorCategory category, Goffset position, const char *message) {
    char head[64];
    if (position >= 0)
        snprintf(head, sizeof head, "%s (%lld): ", CATEGORY_NAMES[category], (long long)position);
    else
        snprintf(head, sizeof head, "%s: ", CATEGORY_NAMES[category]);
    std::string line = std::string(head) + message + "\n";
    if (error_lines.size() + line.size() <= MAX_ERROR_BYTES && last_line.empty()) {
        error_lines += line;
        return;
    }
    if (line.find("Error") != std::string::npos) last_error_line = line;
    last_line = line;
}

void finish_errors() {
    if (!last_error_line.empty() && last_error_line != last_line) error_lines += last_error_line;
    error_lines += last_line;
}

void clear_errors() {
    error_lines.clear();
    last_error_line.clear();
    last_line.clear();
}

struct Text {
    std::string bytes;
    size_t limit;
};

void append_text(void *stream, const char *text, int length) {
    auto *out = static_cast<Text *>(stream);
    size_t room = out->limit - out->bytes.size();
    out->bytes.append(text, static_cast<size_t>(length) < room ? length : room);
}

bool text_is_full(void *stream) {  // poppler's abort check: stop drawing once nothing fits
    auto *out = static_cast<Text *>(stream);
    return out->bytes.size() >= out->limit;
}

bool read_exactly(void *buffer, size_t size) {
    auto *at = static_cast<char *>(buffer);
    while (size) {
        ssize_t got = read(0, at, size);
        if (got <= 0) return false;
        at += got;
        size -= got;
    }
    return true;
}

void write_exactly(const void *buffer, size_t size) {
    auto *at = static_cast<const char *>(buffer);
    while (size) {
        ssize_t put = write(1, at, size);
        if (put <= 0) _exit(3);  // the client is gone
        at += put;
        size -= put;
    }
}

void write_length(size_t length) {
    unsigned char bytes[4] = {static_cast<unsigned char>(length >> 24),
                              static_cast<unsigned char>(length >> 16),
                              static_cast<unsigned char>(length >> 8),
                              static_cast<unsigned char>(length)};
    write_exactly(bytes, 4);
}

// `stream` is the PDF's; the document owns (and deletes) it.
Status read_pdf(BaseStream *stream, int max_pages, Text &text) {
    PDFDoc document(stream);
    if (!document.isOk())
        return document.getErrorCode() == errEncrypted ? NEEDS_PASSWORD : NOT_OPENED;
    int last_page = document.getNumPages() < max_pages ? document.getNumPages() : max_pages;
    if (last_page < 1) {  // as pdftotext says it (and exits with 99)
        error(errCommandLine, -1, "Wrong page range given: the first page ({0:d}) can not be "
              "after the last page ({1:d}).", 1, last_page);
        return NO_PAGE;
    }
    TextOutputDev output(append_text, &text, false, 0, false);
    if (output.isOk()) {
        output.setTextPageBreaks(true);
        document.displayPages(&output, 1, last_page, 72, 72, 0, true, false, false,
                              text_is_full, &text);
    }
    return READ;
}

// The PDF of a 'b' request, read whole from standard input. False at its end.
bool read_pdf_sent(int max_pages, Text &text, unsigned char &status) {
    unsigned char length[4];
    if (!read_exactly(length, 4)) return false;
    uint32_t size = static_cast<uint32_t>(length[0]) << 24 | length[1] << 16 | length[2] << 8
                    | length[3];
    char *data = static_cast<char *>(gmalloc(size ? size : 1));
    if (!read_exactly(data, size)) return false;
    // The stream reads `data` and does not free it: freed here once the document is gone.
    status = read_pdf(new MemStream(data, 0, size, Object(objNull)), max_pages, text);
    gfree(data);
    return true;
}

// The PDF of an 'f' request: the scratch file's content, read through a copy of its
// descriptor (GooFile closes the one it is given).
unsigned char read_pdf_in_file(int scratch_fd, int max_pages, Text &text) {
    std::unique_ptr<GooFile> file = GooFile::open(dup(scratch_fd));
    if (!file) {
        error(errIO, -1, "Couldn't read the scratch file");
        return NOT_OPENED;
    }
    // `file` outlives the document reading it, which read_pdf ends before it returns.
    return read_pdf(new FileStream(file.get(), 0, true, file->size(), Object(objNull)),
                    max_pages, text);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: pdf-text-server MAX_PAGES MAX_OUTPUT_BYTES SCRATCH_FD\n");
        return 2;
    }
    int max_pages = atoi(argv[1]);
    size_t max_output = strtoull(argv[2], nullptr, 10);
    int scratch_fd = atoi(argv[3]);
    globalParams = std::make_unique<GlobalParams>();
    globalParams->setTextEncoding("UTF-8");
    setErrorCallback(keep_error);
    for (;;) {
        unsigned char kind;
        if (!read_exactly(&kind, 1)) return 0;
        clear_errors();
        Text text{std::string(), max_output};
        unsigned char status;
        if (kind == 'f') {
            status = read_pdf_in_file(scratch_fd, max_pages, text);
        } else if (kind != 'b' || !read_pdf_sent(max_pages, text, status)) {
            return kind == 'b' ? 0 : 2;  // the end of the input, or a client that is wrong
        }
        finish_errors();
        write_exactly(&status, 1);
        write_length(text.bytes.size());
        write_exactly(text.bytes.data(), text.bytes.size());
        write_length(error_lines.size());
        write_exactly(error_lines.data(), error_lines.size());
    }
}

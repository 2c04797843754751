// Streaming reflection / replication padding of NHWC feature maps, SIMD channels per beat.
//
// Input : an NHWC feature map of IMG_H x IMG_W pixels and CHANNELS channels, streamed in
//         row-major order (h, w, channel fold), SIMD channels per beat (lowest channel in the
//         lowest bits).
// Output: the map padded by PAD_TOP / PAD_BOTTOM rows and PAD_LEFT / PAD_RIGHT columns, same beat
//         format: out[oh][ow] = in[src(oh - PAD_TOP, IMG_H)][src(ow - PAD_LEFT, IMG_W)] with
//         REFLECT = 1 (numpy "reflect", ONNX Pad mode "reflect", PyTorch ReflectionPad2d):
//             src(i, n) = |i| for i < 0, 2(n-1) - i for i >= n (edge pixel not repeated);
//         REFLECT = 0 (numpy / ONNX "edge", PyTorch ReplicationPad2d):
//             src(i, n) = clamp(i, 0, n-1).
//
// Architecture: a line buffer of NB row slots (one input row each), written round-robin in input
// order; the reader emits output rows, each the slot of its source row read in output column
// order. NB = max(PAD_TOP, PAD_BOTTOM) + 2 for reflection (the first output row needs input row
// PAD_TOP, so rows 0..PAD_TOP must be held; the bottom rows reflect the last PAD_BOTTOM + 1; one
// more slot lets the next row arrive while the current one is read), 2 for replication. A row is
// released as soon as no later output row of its frame needs it. The output port moves one beat
// per cycle in steady state; the latency is PAD_TOP + 1 input rows (reflection) or one row.
// Frames follow each other without gaps in the input (the image count is unbounded).
// One write and one registered read port (block-RAM inferable); the read register is the output
// register, so m_axis_tdata/tvalid come straight from flops.
//
// Ports follow FINN: clock ap_clk, active-low synchronous reset ap_rst_n; AXI-Stream without
// tlast/tkeep; data width SIMD*ELEM_BITS (FINN's wrapper pads it to whole bytes).
`timescale 1ns / 1ps
`default_nettype none

module streaming_pad #(
    // Bits per element (the FINN datatype's bitwidth); the core only moves bits.
    parameter integer ELEM_BITS = 8,
    // Channels per beat; must divide CHANNELS.
    parameter integer SIMD = 1,
    // Input image height H and width W in pixels.
    parameter integer IMG_H = 4,
    parameter integer IMG_W = 4,
    // Channels C of input and output.
    parameter integer CHANNELS = 1,
    // Padding per side in pixels, >= 0; with REFLECT = 1 at most IMG_H-1 (rows) / IMG_W-1 (columns).
    parameter integer PAD_TOP = 1,
    parameter integer PAD_LEFT = 1,
    parameter integer PAD_BOTTOM = 1,
    parameter integer PAD_RIGHT = 1,
    // 1: reflection (mirror without repeating the edge); 0: replication of the edge pixel.
    parameter integer REFLECT = 1
) (
    input  wire                      ap_clk,
    input  wire                      ap_rst_n,

    input  wire [SIMD*ELEM_BITS-1:0] s_axis_tdata,
    input  wire                      s_axis_tvalid,
    output wire                      s_axis_tready,

    output wire [SIMD*ELEM_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);

    // Elaboration-time parameter checks.
    generate
        if (ELEM_BITS < 1) begin : g_bad_elem_bits
            $fatal(1, "streaming_pad: ELEM_BITS must be >= 1 (got %0d)", ELEM_BITS);
        end
        if (SIMD < 1) begin : g_bad_simd
            $fatal(1, "streaming_pad: SIMD must be >= 1 (got %0d)", SIMD);
        end
        if (IMG_H < 1 || IMG_W < 1) begin : g_bad_img
            $fatal(1, "streaming_pad: IMG_H and IMG_W must be >= 1 (got %0d x %0d)", IMG_H, IMG_W);
        end
        if (CHANNELS < 1) begin : g_bad_channels
            $fatal(1, "streaming_pad: CHANNELS must be >= 1 (got %0d)", CHANNELS);
        end
        if (SIMD >= 1 && CHANNELS % SIMD != 0) begin : g_bad_fold
            $fatal(1, "streaming_pad: SIMD (%0d) must divide CHANNELS (%0d)", SIMD, CHANNELS);
        end
        if (PAD_TOP < 0 || PAD_LEFT < 0 || PAD_BOTTOM < 0 || PAD_RIGHT < 0) begin : g_bad_pad
            $fatal(1, "streaming_pad: padding must be >= 0 (got top %0d left %0d bottom %0d right %0d)",
                   PAD_TOP, PAD_LEFT, PAD_BOTTOM, PAD_RIGHT);
        end
        if (REFLECT != 0 && REFLECT != 1) begin : g_bad_mode
            $fatal(1, "streaming_pad: REFLECT must be 0 (replicate) or 1 (reflect) (got %0d)", REFLECT);
        end
        if (REFLECT == 1 && (PAD_TOP >= IMG_H || PAD_BOTTOM >= IMG_H)) begin : g_bad_reflect_h
            $fatal(1, "streaming_pad: reflection needs PAD_TOP and PAD_BOTTOM < IMG_H (%0d)", IMG_H);
        end
        if (REFLECT == 1 && (PAD_LEFT >= IMG_W || PAD_RIGHT >= IMG_W)) begin : g_bad_reflect_w
            $fatal(1, "streaming_pad: reflection needs PAD_LEFT and PAD_RIGHT < IMG_W (%0d)", IMG_W);
        end
    endgenerate

    localparam integer DW    = SIMD * ELEM_BITS;
    localparam integer FOLD  = (SIMD >= 1) ? CHANNELS / SIMD : 1;          // beats per pixel
    localparam integer ROW   = IMG_W * FOLD;                               // words per input row
    localparam integer NB    = (REFLECT == 1)
                               ? ((PAD_TOP > PAD_BOTTOM) ? PAD_TOP : PAD_BOTTOM) + 2 : 2;   // row slots
    localparam integer DEPTH = NB * ROW;
    localparam integer AW    = $clog2(DEPTH);                              // DEPTH >= 2 (NB >= 2)
    localparam integer OH    = IMG_H + PAD_TOP + PAD_BOTTOM;
    localparam integer OW    = IMG_W + PAD_LEFT + PAD_RIGHT;
    localparam integer HW    = $clog2(OH + 1);                             // row counters (0..OH)
    localparam integer XW    = $clog2(OW + 1);                             // column counter
    localparam integer FW    = (FOLD > 1) ? $clog2(FOLD) : 1;
    localparam integer NW    = $clog2(NB + 1);                             // slot count 0..NB
    // The last row kept until the frame ends: the bottom padding reflects rows IMG_H-1-PAD_BOTTOM..
    localparam integer KEEP  = (REFLECT == 1) ? IMG_H - 1 - PAD_BOTTOM : IMG_H - 1;

    localparam [AW-1:0] A_ROW      = AW'(ROW);
    localparam [AW:0]   A_DEPTH    = (AW + 1)'(DEPTH);           // one bit wider: DEPTH itself
    localparam [AW-1:0] A_FOLD     = AW'(FOLD);
    localparam [AW-1:0] A_ROW_LAST = AW'(ROW - 1);
    localparam [AW-1:0] A_FRAME    = AW'((IMG_H % NB) * ROW);     // slot offset of the next frame's row 0
    localparam [AW-1:0] A_FIRST    = AW'(((REFLECT == 1) ? PAD_TOP : 0) * ROW);   // its first source row
    localparam [AW-1:0] A_COL0     = AW'(((REFLECT == 1) ? PAD_LEFT : 0) * FOLD); // first source column
    localparam [HW-1:0] H_FIRST    = HW'((REFLECT == 1) ? PAD_TOP : 0);
    localparam [HW-1:0] H_LAST     = HW'(OH - 1);
    localparam [HW-1:0] H_TOP      = HW'(PAD_TOP);
    localparam [HW-1:0] H_TOP_H    = HW'(PAD_TOP + IMG_H);
    localparam [HW-1:0] H_IMG      = HW'(IMG_H);
    localparam [HW-1:0] H_KEEP     = HW'(KEEP);
    localparam [XW-1:0] X_LAST     = XW'(OW - 1);
    localparam [XW-1:0] X_LEFT     = XW'(PAD_LEFT);
    localparam [XW-1:0] X_LEFT_W   = XW'(PAD_LEFT + IMG_W);
    localparam [FW-1:0] F_LAST     = FW'(FOLD - 1);
    localparam [NW-1:0] N_SLOTS    = NW'(NB);

    // Row slots: slot k at [k*ROW, (k+1)*ROW).
    reg [DW-1:0] mem [0:DEPTH-1];

    // Address arithmetic modulo DEPTH (operands < DEPTH, so one correction suffices).
    function automatic [AW-1:0] add_mod(input [AW-1:0] a, input [AW-1:0] b);
        reg [AW:0] s;
        begin
            s = {1'b0, a} + {1'b0, b};
            add_mod = (s >= A_DEPTH) ? AW'(s - A_DEPTH) : AW'(s);
        end
    endfunction

    function automatic [AW-1:0] sub_mod(input [AW-1:0] a, input [AW-1:0] b);
        begin
            sub_mod = (a >= b) ? a - b : AW'({1'b0, a} + A_DEPTH - {1'b0, b});
        end
    endfunction

    // ---------------------------------------------------------------- writer (input order)
    reg  [AW-1:0] wbase;             // address of the slot being written
    reg  [AW-1:0] wcnt;              // word within the row
    reg  [NW-1:0] avail;             // complete rows held and not yet released
    wire          wr_fire  = s_axis_tvalid && s_axis_tready;
    wire          wr_row   = wr_fire && (wcnt == A_ROW_LAST);

    assign s_axis_tready = (avail < N_SLOTS);

    always @(posedge ap_clk) begin
        if (wr_fire) mem[wbase + wcnt] <= s_axis_tdata;
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            wbase <= {AW{1'b0}};
            wcnt  <= {AW{1'b0}};
        end else if (wr_fire) begin
            if (wr_row) begin
                wbase <= add_mod(wbase, A_ROW);
                wcnt  <= {AW{1'b0}};
            end else begin
                wcnt <= wcnt + 1'b1;
            end
        end
    end

    // ---------------------------------------------------------------- reader (output order)
    // Loop nest, innermost first: fold, ow (output column), oh (output row).
    reg  [FW-1:0] fold;
    reg  [XW-1:0] ow;
    reg  [HW-1:0] oh;
    reg  [HW-1:0] srow;              // source row of the output row (0..IMG_H-1)
    reg  [HW-1:0] rel;               // rows of this frame released (rows 0..rel-1 are gone)
    reg  [AW-1:0] fbase;             // address of the slot of this frame's row 0
    reg  [AW-1:0] rbase;             // address of the slot of row srow
    reg  [AW-1:0] col;               // source column * FOLD
    reg  [DW-1:0] rdata;
    reg           out_valid;

    wire fold_wrap = (fold == F_LAST);
    wire ow_wrap   = fold_wrap && (ow == X_LAST);
    wire oh_wrap   = ow_wrap && (oh == H_LAST);

    // the source row has arrived: rows rel..rel+avail-1 are held, rows below rel were complete
    wire [HW:0]  held_to = {1'b0, rel} + (HW + 1)'(avail);
    wire         row_ok  = held_to > {1'b0, srow};
    wire         rd_step = row_ok && (!out_valid || m_axis_tready);

    // next column / row and the direction their source moves: +1 inside the image, -1 (reflect)
    // or 0 (replicate) in the padding
    wire [XW-1:0] ow_next = ow + 1'b1;
    wire [HW-1:0] oh_next = oh + 1'b1;
    wire          col_up  = (ow_next > X_LEFT) && (ow_next < X_LEFT_W);
    wire          row_up  = (oh_next > H_TOP) && (oh_next < H_TOP_H);

    // rows the rest of the frame still needs start at need_next (output rows oh_next..)
    wire [HW-1:0] need_over = oh_next - H_TOP;
    wire [HW-1:0] need_next = (oh_next <= H_TOP) ? {HW{1'b0}} : ((need_over > H_KEEP) ? H_KEEP : need_over);
    // rows released by the last read of an output row (at most NB)
    wire [NW-1:0] release_n = !ow_wrap ? {NW{1'b0}} : NW'(oh_wrap ? H_IMG - rel : need_next - rel);
    wire [AW-1:0] fbase_next = add_mod(fbase, A_FRAME);

    assign m_axis_tdata  = rdata;
    assign m_axis_tvalid = out_valid;

    always @(posedge ap_clk) begin
        if (rd_step) rdata <= mem[rbase + col + AW'(fold)];
    end

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            fold      <= {FW{1'b0}};
            ow        <= {XW{1'b0}};
            oh        <= {HW{1'b0}};
            srow      <= H_FIRST;
            rel       <= {HW{1'b0}};
            fbase     <= {AW{1'b0}};
            rbase     <= A_FIRST;
            col       <= A_COL0;
            out_valid <= 1'b0;
        end else begin
            if (rd_step) begin
                out_valid <= 1'b1;
            end else if (m_axis_tready) begin
                out_valid <= 1'b0;
            end
            if (rd_step) begin
                if (!fold_wrap) begin
                    fold <= fold + 1'b1;
                end else begin
                    fold <= {FW{1'b0}};
                    if (!ow_wrap) begin
                        ow <= ow_next;
                        if (col_up)               col <= col + A_FOLD;
                        else if (REFLECT == 1)    col <= col - A_FOLD;
                    end else begin
                        ow  <= {XW{1'b0}};
                        col <= A_COL0;
                        if (!oh_wrap) begin
                            oh  <= oh_next;
                            rel <= need_next;
                            if (row_up) begin
                                srow  <= srow + 1'b1;
                                rbase <= add_mod(rbase, A_ROW);
                            end else if (REFLECT == 1) begin
                                srow  <= srow - 1'b1;
                                rbase <= sub_mod(rbase, A_ROW);
                            end
                        end else begin
                            oh    <= {HW{1'b0}};
                            rel   <= {HW{1'b0}};
                            srow  <= H_FIRST;
                            fbase <= fbase_next;
                            rbase <= add_mod(fbase_next, A_FIRST);
                        end
                    end
                end
            end
        end
    end

    // ---------------------------------------------------------------- slot bookkeeping
    // avail counts rows written and not released; the writer adds one per complete row, the
    // reader removes those no later output row of the frame needs.
    wire [NW-1:0] released = rd_step ? release_n : {NW{1'b0}};

    always @(posedge ap_clk) begin
        if (!ap_rst_n) begin
            avail <= {NW{1'b0}};
        end else begin
            avail <= avail + NW'(wr_row) - released;
        end
    end

endmodule

`default_nettype wire

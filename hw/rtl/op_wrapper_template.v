// FINN top-level wrapper template of every fpga_gan op core (hw/rtl/<core>.sv), filled by
// fpga_gan.ops GanRTLMixin.generate_hdl: every $KEY$ is replaced and the text above the marker line
// is dropped. Not a Verilog file on its own; the filled wrapper is plain Verilog-2001.
// $CORE_MODULE$ is the op's core, $CORE_PARAMETERS$ the op's rtl_parameters() in order.
// Stream interfaces use FINN's names (in<i>_V_*, out<i>_V_*, widths padded to whole bytes; padding
// bits of outputs are driven 0, of inputs ignored); the core keeps the verilog-axis names
// (s_axis_*, m_axis_*), with N streams packed into one bus, stream 0 in the lowest bits.
// ---- generated wrapper begins ----
`timescale 1ns / 1ps
`default_nettype none

module $TOP_MODULE_NAME$ (
    (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF $BUSIF$, ASSOCIATED_RESET ap_rst_n" *)
    (* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 ap_clk CLK" *)
    input  wire ap_clk,
    (* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)
    input  wire ap_rst_n,
$STREAM_PORTS$
);

$PAD_GLUE$
    $CORE_MODULE$ #(
$CORE_PARAMETERS$
    ) impl (
        .ap_clk(ap_clk),
        .ap_rst_n(ap_rst_n),
        .s_axis_tdata($S_TDATA$),
        .s_axis_tvalid($S_TVALID$),
        .s_axis_tready($S_TREADY$),
        .m_axis_tdata($M_TDATA$),
        .m_axis_tvalid($M_TVALID$),
        .m_axis_tready($M_TREADY$)
    );

endmodule

`default_nettype wire

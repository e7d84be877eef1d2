// netforecast's wireless scenarios: TCP over an ns-3 Wi-Fi or LTE link, written as a
// pcap at the server (the data sender), like the lab's sender-side captures.
//
//   wireless --scenario=wifi|lte --app=bulk|video|web|onoff --seed=N --duration=S
//            --cc=cubic|newreno|bbr --out=FILE.pcap
//
// server --(point-to-point, Internet delay)-- AP or PGW -- Wi-Fi / LTE radio -- target station
// Everything random (positions, walks, delays, apps, contenders) is drawn from the
// seed, so a (scenario, app, seed, duration, cc) always gives the same capture.
//
// Wi-Fi: 802.11n at 5 GHz, Minstrel-HT rate adaptation, the target walks at
// 0.5-2 m/s in a box 5-45 m from the AP (rates move with distance), 0-4 other
// stations contend with downlink bulk TCP or uplink UDP from another server.
// LTE: one eNB (10 MHz), the target drives at 1-15 m/s from 100-1200 m, 0-4 other
// UEs share the cell with bulk TCP; proportional-fair scheduling.
// Apps towards the target: backlogged bulk, video-like segments (a burst of
// 2-10 s of media at 1-6 Mbit/s, then idle until the next one is due), web-like
// pages (5-40 short connections, heavy-tailed sizes, think times), or exponential
// on/off at an app-limited rate.
#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/lte-module.h"
#include "ns3/mobility-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/wifi-module.h"

#include <cmath>
#include <string>

using namespace ns3;

namespace
{

void
WritePacket(Ptr<PcapFileWrapper> file, Ptr<const Packet> p)
{
    file->Write(Simulator::Now(), p);
}

// Sends `bytes` on a fresh connection per segment period: video-like on/off.
class SegmentApp : public Application
{
  public:
    void Setup(Address peer, double segmentS, double rateBps, double duration)
    {
        m_peer = peer;
        m_segmentS = segmentS;
        m_rateBps = rateBps;
        m_duration = duration;
    }

  private:
    void StartApplication() override
    {
        m_socket = Socket::CreateSocket(GetNode(), TcpSocketFactory::GetTypeId());
        m_socket->Bind();
        m_socket->Connect(m_peer);
        m_socket->SetSendCallback(MakeCallback(&SegmentApp::Fill, this));
        // Start-up: four segments back to back, then one per period.
        m_pending = static_cast<uint64_t>(4 * m_segmentS * m_rateBps / 8);
        Simulator::Schedule(Seconds(m_segmentS * 3), &SegmentApp::Next, this);
    }

    void StopApplication() override
    {
        if (m_socket)
        {
            m_socket->Close();
        }
    }

    void Next()
    {
        if (Simulator::Now().GetSeconds() > m_duration)
        {
            return;
        }
        m_pending += static_cast<uint64_t>(m_segmentS * m_rateBps / 8);
        Fill(m_socket, m_socket->GetTxAvailable());
        Simulator::Schedule(Seconds(m_segmentS), &SegmentApp::Next, this);
    }

    void Fill(Ptr<Socket> s, uint32_t avail)
    {
        while (m_pending > 0 && s->GetTxAvailable() > 0)
        {
            uint32_t n = std::min<uint64_t>({m_pending, s->GetTxAvailable(), 65536});
            int sent = s->Send(Create<Packet>(n));
            if (sent <= 0)
            {
                break;
            }
            m_pending -= sent;
        }
    }

    Ptr<Socket> m_socket;
    Address m_peer;
    double m_segmentS{4};
    double m_rateBps{2e6};
    double m_duration{60};
    uint64_t m_pending{0};
};

double
Pareto(Ptr<UniformRandomVariable> u, double alpha, double xm, double cap)
{
    return std::min(cap, xm / std::pow(std::max(u->GetValue(), 1e-12), 1.0 / alpha));
}

} // namespace

int
main(int argc, char* argv[])
{
    std::string scenario = "wifi";
    std::string app = "bulk";
    std::string cc = "cubic";
    std::string out = "wireless.pcap";
    uint32_t seed = 1;
    double duration = 60;
    int32_t forceContenders = -1;
    CommandLine cmd(__FILE__);
    cmd.AddValue("scenario", "wifi or lte", scenario);
    cmd.AddValue("app", "bulk, video, web or onoff", app);
    cmd.AddValue("cc", "cubic, newreno or bbr", cc);
    cmd.AddValue("seed", "scenario seed", seed);
    cmd.AddValue("duration", "seconds of traffic", duration);
    cmd.AddValue("out", "pcap written at the server", out);
    cmd.AddValue("contenders", "other stations (default: 0-4 from the seed)", forceContenders);
    cmd.Parse(argc, argv);
    if ((scenario != "wifi" && scenario != "lte") ||
        (app != "bulk" && app != "video" && app != "web" && app != "onoff") ||
        (cc != "cubic" && cc != "newreno" && cc != "bbr") || duration <= 0)
    {
        std::cerr << "wireless: --scenario wifi|lte, --app bulk|video|web|onoff, --cc "
                     "cubic|newreno|bbr, --duration > 0"
                  << std::endl;
        return 2;
    }
    RngSeedManager::SetSeed(7);
    RngSeedManager::SetRun(seed);
    Ptr<UniformRandomVariable> u = CreateObject<UniformRandomVariable>();
    u->SetStream(1);

    std::string tcp = cc == "cubic" ? "ns3::TcpCubic" : cc == "bbr" ? "ns3::TcpBbr" : "ns3::TcpNewReno";
    Config::SetDefault("ns3::TcpL4Protocol::SocketType", TypeIdValue(TypeId::LookupByName(tcp)));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(1448));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(4 << 20));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(4 << 20));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(2));

    // Servers (0: the captured one, 1: the contenders') and the gateway side.
    NodeContainer servers;
    servers.Create(2);
    Ptr<Node> gw;
    NodeContainer stations; // target first
    uint32_t contenders = static_cast<uint32_t>(u->GetInteger(0, 4));
    if (forceContenders >= 0)
    {
        contenders = static_cast<uint32_t>(forceContenders);
    }
    stations.Create(1 + contenders);
    Ptr<LteHelper> lte;
    Ptr<PointToPointEpcHelper> epc;
    NetDeviceContainer radio;
    InternetStackHelper inet;
    Ipv4AddressHelper addr;
    Ipv4InterfaceContainer staIf;

    if (scenario == "lte")
    {
        lte = CreateObject<LteHelper>();
        epc = CreateObject<PointToPointEpcHelper>();
        lte->SetEpcHelper(epc);
        lte->SetEnbDeviceAttribute("DlBandwidth", UintegerValue(50));
        lte->SetEnbDeviceAttribute("UlBandwidth", UintegerValue(50));
        lte->SetSchedulerType("ns3::PfFfMacScheduler");
        lte->SetAttribute("PathlossModel", StringValue("ns3::LogDistancePropagationLossModel"));
        Config::SetDefault("ns3::LogDistancePropagationLossModel::Exponent", DoubleValue(2.6));
        Config::SetDefault("ns3::LteUePhy::TxPower", DoubleValue(23));
        Config::SetDefault("ns3::LteRlcUm::MaxTxBufferSize", UintegerValue(1 << 20));
        Config::SetDefault("ns3::LteEnbRrc::SrsPeriodicity", UintegerValue(80));
        gw = epc->GetPgwNode();
        NodeContainer enb;
        enb.Create(1);
        MobilityHelper fixed;
        fixed.SetMobilityModel("ns3::ConstantPositionMobilityModel");
        fixed.Install(enb);
        // Stations drive (the target at 1-15 m/s) inside a square of 100-700 m
        // around the cell, turning every 5 s.
        double half = u->GetValue(100, 700);
        std::string edge = "ns3::UniformRandomVariable[Min=" + std::to_string(-half) +
                           "|Max=" + std::to_string(half) + "]";
        for (uint32_t i = 0; i < stations.GetN(); ++i)
        {
            double v = i == 0 ? u->GetValue(1, 15) : u->GetValue(0.5, 3);
            MobilityHelper moving;
            moving.SetPositionAllocator("ns3::RandomRectanglePositionAllocator", "X", StringValue(edge), "Y",
                                        StringValue(edge));
            moving.SetMobilityModel("ns3::RandomWalk2dMobilityModel", "Bounds",
                                    RectangleValue(Rectangle(-half, half, -half, half)), "Speed",
                                    StringValue("ns3::ConstantRandomVariable[Constant=" + std::to_string(v) + "]"),
                                    "Time", TimeValue(Seconds(5)), "Mode", StringValue("Time"));
            moving.Install(stations.Get(i));
        }
        NetDeviceContainer enbDev = lte->InstallEnbDevice(enb);
        radio = lte->InstallUeDevice(stations);
        inet.Install(stations);
        staIf = epc->AssignUeIpv4Address(radio);
        Ipv4StaticRoutingHelper rh;
        for (uint32_t i = 0; i < stations.GetN(); ++i)
        {
            rh.GetStaticRouting(stations.Get(i)->GetObject<Ipv4>())
                ->SetDefaultRoute(epc->GetUeDefaultGatewayAddress(), 1);
        }
        lte->Attach(radio, enbDev.Get(0));
    }
    else
    {
        gw = CreateObject<Node>();
        WifiHelper wifi;
        wifi.SetStandard(WIFI_STANDARD_80211n);
        wifi.SetRemoteStationManager("ns3::MinstrelHtWifiManager");
        YansWifiChannelHelper channel = YansWifiChannelHelper::Default();
        YansWifiPhyHelper phy;
        phy.SetChannel(channel.Create());
        phy.Set("ChannelSettings", StringValue("{36, 20, BAND_5GHZ, 0}"));
        WifiMacHelper mac;
        Ssid ssid("netforecast");
        mac.SetType("ns3::StaWifiMac", "Ssid", SsidValue(ssid));
        radio = wifi.Install(phy, mac, stations);
        mac.SetType("ns3::ApWifiMac", "Ssid", SsidValue(ssid));
        NetDeviceContainer apDev = wifi.Install(phy, mac, gw);
        MobilityHelper fixed;
        fixed.SetMobilityModel("ns3::ConstantPositionMobilityModel");
        fixed.Install(gw);
        double box = u->GetValue(5, 45);
        MobilityHelper walk;
        walk.SetPositionAllocator("ns3::RandomRectanglePositionAllocator", "X",
                                  StringValue("ns3::UniformRandomVariable[Min=1|Max=" + std::to_string(box) + "]"),
                                  "Y", StringValue("ns3::UniformRandomVariable[Min=1|Max=" + std::to_string(box) + "]"));
        double speed = u->GetValue(0.5, 2.0);
        walk.SetMobilityModel("ns3::RandomWalk2dMobilityModel", "Bounds",
                              RectangleValue(Rectangle(0, box, 0, box)), "Speed",
                              StringValue("ns3::ConstantRandomVariable[Constant=" + std::to_string(speed) + "]"),
                              "Time", TimeValue(Seconds(2)), "Mode", StringValue("Time"));
        walk.Install(stations);
        inet.Install(gw);
        inet.Install(stations);
        addr.SetBase("10.2.0.0", "255.255.255.0");
        NetDeviceContainer all;
        all.Add(apDev);
        all.Add(radio);
        Ipv4InterfaceContainer ifs = addr.Assign(all);
        for (uint32_t i = 0; i < stations.GetN(); ++i)
        {
            staIf.Add(ifs.Get(i + 1));
        }
        Ipv4StaticRoutingHelper rh;
        for (uint32_t i = 0; i < stations.GetN(); ++i)
        {
            rh.GetStaticRouting(stations.Get(i)->GetObject<Ipv4>())
                ->SetDefaultRoute(ifs.GetAddress(0), 1);
        }
    }

    // The Internet side: each server has its own point-to-point link to the
    // gateway with a per-seed delay (the path between the server and the access
    // network). Not CSMA: a CSMA segment is busy for the whole propagation delay.
    inet.Install(servers);
    PointToPointHelper wan;
    wan.SetDeviceAttribute("DataRate", StringValue("1Gbps"));
    double wanMs = std::round(u->GetValue(1, 40));
    wan.SetChannelAttribute("Delay", TimeValue(MilliSeconds(wanMs)));
    NetDeviceContainer wanDev[2];
    for (uint32_t i = 0; i < 2; ++i)
    {
        wanDev[i] = wan.Install(servers.Get(i), gw);
        addr.SetBase(Ipv4Address(i == 0 ? "10.1.0.0" : "10.1.1.0"), "255.255.255.0");
        Ipv4InterfaceContainer wanIf = addr.Assign(wanDev[i]);
        Ipv4StaticRoutingHelper rh;
        rh.GetStaticRouting(servers.Get(i)->GetObject<Ipv4>())->SetDefaultRoute(wanIf.GetAddress(1), 1);
    }

    // Sinks on every station; the target's apps from server 0, the contenders' from server 1.
    uint16_t port = 5001;
    PacketSinkHelper sink("ns3::TcpSocketFactory", InetSocketAddress(Ipv4Address::GetAny(), port));
    sink.Install(stations).Start(Seconds(0.5));
    Address target = InetSocketAddress(staIf.GetAddress(0), port);
    double t0 = 1.0;
    double end = t0 + duration;
    if (app == "bulk")
    {
        BulkSendHelper bulk("ns3::TcpSocketFactory", target);
        bulk.SetAttribute("MaxBytes", UintegerValue(0));
        auto a = bulk.Install(servers.Get(0));
        a.Start(Seconds(t0));
        a.Stop(Seconds(end));
    }
    else if (app == "video")
    {
        double seg = std::vector<double>{2, 4, 6, 10}[u->GetInteger(0, 3)];
        double rate = u->GetValue(1e6, 6e6);
        Ptr<SegmentApp> v = CreateObject<SegmentApp>();
        v->Setup(target, seg, rate, end);
        servers.Get(0)->AddApplication(v);
        v->SetStartTime(Seconds(t0));
        v->SetStopTime(Seconds(end));
    }
    else if (app == "web")
    {
        double t = t0;
        while (t < end)
        {
            uint32_t n = static_cast<uint32_t>(u->GetInteger(5, 40));
            for (uint32_t k = 0; k < n; ++k)
            {
                BulkSendHelper obj("ns3::TcpSocketFactory", target);
                obj.SetAttribute("MaxBytes", UintegerValue(static_cast<uint64_t>(Pareto(u, 1.1, 1500, 3e6))));
                auto a = obj.Install(servers.Get(0));
                a.Start(Seconds(t + (k == 0 ? 0 : u->GetValue(0.05, 0.6))));
                a.Stop(Seconds(end));
            }
            t += std::min(40.0, std::max(0.5, std::exp(std::log(4.0) + 0.9 * std::sqrt(-2 * std::log(std::max(u->GetValue(), 1e-12))) * std::cos(2 * M_PI * u->GetValue()))));
        }
    }
    else
    {
        OnOffHelper onoff("ns3::TcpSocketFactory", target);
        onoff.SetAttribute("DataRate", DataRateValue(DataRate(static_cast<uint64_t>(u->GetValue(0.2e6, 8e6)))));
        onoff.SetAttribute("PacketSize", UintegerValue(1448));
        onoff.SetAttribute("OnTime", StringValue("ns3::ExponentialRandomVariable[Mean=2|Bound=20]"));
        onoff.SetAttribute("OffTime", StringValue("ns3::ExponentialRandomVariable[Mean=3|Bound=30]"));
        auto a = onoff.Install(servers.Get(0));
        a.Start(Seconds(t0));
        a.Stop(Seconds(end));
    }
    for (uint32_t i = 1; i < stations.GetN(); ++i)
    {
        Address peer = InetSocketAddress(staIf.GetAddress(i), port);
        if (u->GetValue() < 0.5)
        {
            BulkSendHelper bulk("ns3::TcpSocketFactory", peer);
            auto a = bulk.Install(servers.Get(1));
            double from = u->GetValue(t0, end);
            a.Start(Seconds(from));
            a.Stop(Seconds(std::min(end, from + u->GetValue(5, 60))));
        }
        else
        {
            OnOffHelper onoff("ns3::TcpSocketFactory", peer);
            onoff.SetAttribute("DataRate", DataRateValue(DataRate(static_cast<uint64_t>(u->GetValue(1e6, 20e6)))));
            onoff.SetAttribute("OnTime", StringValue("ns3::ExponentialRandomVariable[Mean=3|Bound=30]"));
            onoff.SetAttribute("OffTime", StringValue("ns3::ExponentialRandomVariable[Mean=5|Bound=30]"));
            auto a = onoff.Install(servers.Get(1));
            a.Start(Seconds(t0));
            a.Stop(Seconds(end));
        }
    }

    // The capture: what server 0's interface sends and receives, snap length 128.
    PcapHelper pcap;
    Ptr<PcapFileWrapper> file = pcap.CreateFile(out, std::ios::out, PcapHelper::DLT_PPP, 128);
    wanDev[0].Get(0)->TraceConnectWithoutContext("PromiscSniffer", MakeBoundCallback(&WritePacket, file));

    Simulator::Stop(Seconds(end + 1));
    Simulator::Run();
    Simulator::Destroy();
    std::cerr << "wireless: " << scenario << " " << app << " seed " << seed << " " << duration
              << " s, " << contenders << " contenders, WAN delay " << wanMs << " ms -> " << out
              << std::endl;
    return 0;
}
